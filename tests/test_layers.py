"""The import rule of docs/design.md §1: smnn -> pipeline -> flows, prefect only in flows; inside
pipeline, data <- model, evaluation <- products (the rooms by role)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names)

# What each layer may import besides the standard library and itself.
ALLOWED = {
    "smnn": {"torch", "numpy", "smnn"},
    "pipeline": None,  # anything but prefect and flows
}
# The one optional import in smnn: numba for the compiled CPU kernels, loaded on first use;
# without it smnn runs on torch alone (test_smnn_runs_on_torch_alone_without_numba).
OPTIONAL = {"smnn/_kernels.py": {"numba"}}
FORBIDDEN = {
    "smnn": {"pipeline", "flows", "prefect"},
    "pipeline": {"flows", "prefect", "prefect_dask"},
}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def layer_files(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


# Inside pipeline, the rooms by role and what each must not reach: data is read by all and
# reads none of them; model and evaluation are siblings (evaluation judges forecast stores
# without knowing the model); products draw and export what the others made. The shared
# contracts at pipeline's top level (climatology, eof, forecast_store, regions, cf, progress)
# sit under model, evaluation and products.
SHARED = ("pipeline.climatology", "pipeline.eof", "pipeline.forecast_store", "pipeline.regions",
          "pipeline.cf", "pipeline.progress")
ROOMS = {
    "pipeline.data": {"pipeline.model", "pipeline.evaluation", "pipeline.products"},
    "pipeline.model": {"pipeline.evaluation", "pipeline.products"},
    "pipeline.evaluation": {"pipeline.model", "pipeline.products"},
    "pipeline.products": {"pipeline.model"},
    **{m: {"pipeline.model", "pipeline.evaluation", "pipeline.products"} for m in SHARED},
}


def imported_modules(path: Path) -> set[str]:
    """Every module an absolute import in `path` names, `from a import b` as both a and a.b."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_rooms_in_pipeline_import_only_downwards():
    offenders = []
    for path in layer_files("pipeline"):
        module = module_name(path)
        for room, forbidden in ROOMS.items():
            if not within(module, room):
                continue
            bad = {n for n in imported_modules(path) if any(within(n, f) for f in forbidden)}
            if bad:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "room rule broken:\n" + "\n".join(offenders)


def test_every_pipeline_module_is_in_a_room():
    # A new module must be placed deliberately: in a room, or among the shared contracts.
    homeless = [
        module_name(p) for p in layer_files("pipeline")
        if module_name(p) != "pipeline" and not any(within(module_name(p), r) for r in ROOMS)
    ]
    assert not homeless


@pytest.mark.parametrize("layer", ["smnn", "pipeline"])
def test_layer_imports_only_what_it_may(layer):
    offenders = []
    for path in layer_files(layer):
        names = imported_top_levels(path) - STDLIB
        names -= OPTIONAL.get(path.relative_to(ROOT).as_posix(), set())
        bad = names & FORBIDDEN[layer]
        if ALLOWED[layer] is not None:
            bad |= names - ALLOWED[layer]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "layer rule broken:\n" + "\n".join(offenders)


def test_importing_pipeline_never_loads_prefect():
    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in layer_files("smnn") + layer_files("pipeline")
        if p.name != "__main__.py"
    ]
    modules = [m.removesuffix(".__init__") for m in modules]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'flows'))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_smnn_runs_on_torch_alone_without_numba():
    # numba blocked: importing smnn and a CPU solve with gradients never touch it; "auto"
    # falls back to the torch methods and "compiled" says what is missing.
    code = (
        "import sys\n"
        "sys.modules['numba'] = None\n"
        "import torch, smnn\n"
        "c = torch.ones(2, 5, 1, 1, 3, dtype=torch.float64, requires_grad=True)\n"
        "args = (c, torch.ones(2, 5, 1), torch.ones(2, 1, 1, 2), torch.full((2, 4), 0.1))\n"
        "smnn.ode_forward(*args).sum().backward()\n"
        "assert torch.isfinite(c.grad).all()\n"
        "try:\n"
        "    smnn.ode_forward(*args, method='compiled')\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "method: 'compiled' needs the numba package" in out.stdout


def test_the_rule_checker_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import prefect\nfrom flows.cli import main\n")
    assert {"prefect", "flows"} <= imported_top_levels(bad)


def test_the_room_checker_sees_an_import_between_rooms(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from pipeline.model import train\nimport pipeline.products.maps\n")
    names = imported_modules(bad)
    assert {"pipeline.model.train", "pipeline.products.maps"} <= names
    assert any(within(n, "pipeline.model") for n in names)
    assert not within("pipeline.modelling", "pipeline.model")
