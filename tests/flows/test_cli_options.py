"""The `sstcast` command line as a user meets it: --version, help on every option, required
options marked and refused in one line, boolean flags, and errors that leave nothing behind."""

import argparse

import pytest

from flows.cli import build_parser, main


def _subparsers(parser: argparse.ArgumentParser, path=()):
    """(command path, parser) for every subcommand, nested ones (run ingest, ...) too."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _subparsers(sub, (*path, name))


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("sstcast 0.")


def test_every_option_of_every_command_has_help_text():
    missing = []
    for path, parser in _subparsers(build_parser()):
        for action in parser._actions:
            if action.option_strings and not (action.help or "").strip():
                missing.append(f"sstcast {' '.join(path)} {action.option_strings[-1]}")
    assert not missing, missing
    commands = {path for path, _ in _subparsers(build_parser())}
    assert {("hindcast",), ("export",), ("serve",), ("run", "train")} <= commands


def test_serve_without_workdir_is_one_argparse_line_and_the_usage_says_required(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["serve"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "sstcast serve: error: the following arguments are required: --workdir"
    )
    assert "[--workdir" not in err and "--workdir WORKDIR" in err  # not shown as optional
    assert "validation error" not in err and "pydantic" not in err


def test_booleans_are_flags():
    parser = build_parser()
    base = ["run", "train", "--store", "s.zarr", "--run-dir", "runs"]
    assert parser.parse_args(base + ["--new-run"]).new_run is True
    assert parser.parse_args(base + ["--no-new-run"]).new_run is False
    assert parser.parse_args(base).new_run is None  # the model's default applies
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--new-run", "true"])


def test_a_bad_run_parameter_is_one_line_naming_the_option(capsys):
    code = main(["run", "forecast", "--run-dir", "r", "--store", "s", "--out-dir", "o",
                 "--leads", "zero"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("sstcast run: error: --leads: ") and "got 'zero'" in err


def test_ingest_with_start_after_end_is_an_error_in_one_line(tmp_path, capsys):
    code = main(["ingest", "--start", "2005-01", "--end", "2001-01", "--store",
                 str(tmp_path / "s.zarr")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "start, end: expected start <= end" in err and "2005-01" in err
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("command", ["train", "forecast", "hindcast"])
def test_commands_on_a_missing_store_fail_before_making_any_folder(tmp_path, capsys, command):
    out = tmp_path / "work"
    args = {
        "train": ["train", "--run-dir", str(out / "runs" / "r1")],
        "forecast": ["forecast", "--run-dir", str(out / "r"), "--init", "2000-01",
                     "--out", str(out / "f.zarr")],
        "hindcast": ["hindcast", "--run-dir", str(out / "r"), "--start", "2000-01", "--end",
                     "2000-06", "--out", str(out / "h.zarr")],
    }[command]
    code = main(args + ["--store", str(tmp_path / "missing.zarr")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err == (f"sstcast {command}: error: --store: expected an SST store (sstcast ingest "
                   f"makes one), got '{tmp_path / 'missing.zarr'}' (nothing there)")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run folder, no parents


def test_run_train_on_a_missing_store_fails_before_prefect_starts(tmp_path, capsys):
    code = main(["run", "train", "--store", str(tmp_path / "missing.zarr"), "--run-dir",
                 str(tmp_path / "w" / "runs"), "--new-run"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("sstcast run: error: --store: expected an SST store")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_every_command_is_built_from_a_typed_model_and_dates_read_the_same_everywhere():
    import datetime as dt

    from flows.params import HindcastParameters, TrainParameters

    parser = build_parser()
    # One name for the run folder: the flow's field, on the direct command and under `run`.
    for argv in (["train", "--store", "s", "--run-dir", "r"],
                 ["run", "train", "--store", "s", "--run-dir", "r"]):
        assert parser.parse_args(argv).run_dir == "r"
    assert TrainParameters(store="s", run_dir="r", train_end="1990-12").train_end == (
        dt.date(1990, 12, 1))
    hindcast = HindcastParameters(run_dir="r", store="s", start="1996-01", end="1996-04-01",
                                  out="h.zarr")
    assert (hindcast.start, hindcast.end) == (dt.date(1996, 1, 1), dt.date(1996, 4, 1))
    for bad in ("1996-13", "1996-04-31", "June"):
        with pytest.raises(ValueError, match="expected a date YYYY-MM"):
            HindcastParameters(run_dir="r", store="s", start=bad, end="1996-04", out="h")
