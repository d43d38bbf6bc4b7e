"""The import rule of DESIGN.md §1: smnn -> pipeline -> flows, prefect only in flows."""

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


@pytest.mark.parametrize("layer", ["smnn", "pipeline"])
def test_layer_imports_only_what_it_may(layer):
    offenders = []
    for path in layer_files(layer):
        names = imported_top_levels(path) - STDLIB
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


def test_the_rule_checker_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import prefect\nfrom flows.cli import main\n")
    assert {"prefect", "flows"} <= imported_top_levels(bad)
