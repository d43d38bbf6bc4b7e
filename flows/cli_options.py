"""The options of every `sstcast` command, generated from its typed parameter model
(flows/params.py): one option per field (`run_dir` -> `--run-dir`), the field's description
as the help, required fields as required options, booleans as `--flag/--no-flag`, tuples as
comma-separated lists. argparse only collects the text; pydantic parses and validates it, so
a command refuses a value with the same words as the flow that takes the same model."""

from __future__ import annotations

import argparse
import typing


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, model, skip=()) -> None:
    """One option per field of the parameters `model`."""
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        help_text = field.description or ""
        if field.annotation is bool:  # --new-run / --no-new-run, not --new-run true
            parser.add_argument(option(name), dest=name, default=None,
                                action=argparse.BooleanOptionalAction,
                                help=f"{help_text} (default: {'yes' if field.default else 'no'})")
            continue
        if field.default is not None and not field.is_required():
            shown = ",".join(field.default) if isinstance(field.default, tuple) else field.default
            help_text += f" (default: {shown})"
        # Required fields are required options, so argparse says so in the usage and in one
        # line (not pydantic's report) when one is missing.
        parser.add_argument(option(name), dest=name, default=None, help=help_text,
                            metavar=name.upper(), required=field.is_required())


def one_line(error) -> str:
    """A pydantic ValidationError as one line: `--option: message, got value; ...`."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return str(error)
    parts = []
    for item in errors():
        name = str(item["loc"][0]) if item.get("loc") else ""
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        if name and not message.startswith(name + ":"):  # our validators name the field
            got = item.get("input")
            if ", got " not in message and not isinstance(got, dict):  # nor say it twice
                message += f", got {got!r}"
            message = f"{option(name)}: {message}"
        parts.append(message)
    return "; ".join(parts)


def parameters(model, args: argparse.Namespace, **fixed):
    """The parameters `model` from the options given on the command line."""
    values = {name: getattr(args, name) for name in model.model_fields
              if getattr(args, name, None) is not None}
    for name, value in list(values.items()):
        annotation = model.model_fields[name].annotation
        tuple_typed = typing.get_origin(annotation) is tuple or any(
            typing.get_origin(arg) is tuple for arg in typing.get_args(annotation))
        if tuple_typed:  # comma-separated lists, e.g. --baselines climatology,persistence
            values[name] = tuple(v for v in value.split(",") if v)
    values.update(fixed)
    try:
        return model.model_validate(values)
    except Exception as error:  # pydantic.ValidationError -> one clear CLI error
        raise ValueError(one_line(error)) from None


def command(subparsers, name: str, model, handler, *, help: str | None = None,
            skip=()) -> argparse.ArgumentParser:
    """The subcommand `name`: options from `model`; runs `handler(params, args)`."""
    doc = (model.__doc__ or "").strip()
    parser = subparsers.add_parser(name, help=help or doc.splitlines()[0],
                                   description=" ".join(doc.split()))
    add_options(parser, model, skip=skip)
    parser.set_defaults(func=lambda args: handler(parameters(model, args), args))
    return parser
