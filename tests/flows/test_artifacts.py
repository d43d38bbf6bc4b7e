"""flows/artifacts.py without a server: the report's order, tables and size; publishing the
report on a flow run (one real Prefect server)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows import artifacts


def _rows():
    rows = []
    for name, scale in [("mechanistic_identifier", 0.2236653540379304), ("climatology", 0.5),
                        ("persistence", 0.4)]:
        for region in ("global", "tropics", "nino34"):
            for lead in range(1, 13):
                rows.append({"forecast": name, "region": region, "lead": lead,
                             "rmse": scale * math.sqrt(lead), "bias": -0.01234,
                             "acc": float("nan") if name == "climatology" else 0.9 - lead / 50,
                             "skill_vs_climatology": 0.3, "skill_vs_persistence": 0.1,
                             "n_init": 36 - lead})
    return rows


def _noise_png(path: Path, size=(1650, 620), seed=0) -> str:
    """A PNG as hard to compress as a noisy map."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(path)
    return str(path)


def _context(tmp_path, maps=None, metrics=True):
    return artifacts.ReportContext(
        attrs={"model": "mechanistic_identifier", "run": "20260101T000000Z",
               "train_end": "2003-12-01", "config": '{"a": 1}'},
        provenance="synthetic SST", maps=maps or {}, stores={"forecast store": "f.zarr"},
        metrics={"rows": _rows(), "csv": "m.csv", "json": "m.json"} if metrics else None,
        folder=tmp_path, issued="Dec 2006")


def test_scores_table_is_rounded_with_units_and_readable_names():
    table = artifacts.scores_table(_rows())
    assert list(table[0]) == ["Forecast", "Region", "Lead [months]", "RMSE [°C]", "ACC",
                              "Skill vs clim.", "Skill vs pers.", "Bias [°C]", "Issues"]
    assert table[0]["Forecast"] == "S-MNN" and table[0]["RMSE [°C]"] == "0.22"
    assert table[0]["Bias [°C]"] == "−0.01"
    climatology = next(r for r in table if r["Forecast"] == "climatology")
    assert climatology["ACC"] == artifacts.MISSING
    assert {r["Region"] for r in table} == {"global", "Niño3.4"}  # tropics in the files
    assert len(table) == 2 * 12 * 3


def test_report_puts_maps_first_names_files_and_repeats_no_title(tmp_path):
    maps = {name: _noise_png(tmp_path / f"{name}.png", size=(300, 200))
            for name in ("skill_vs_lead", "anomaly", "nino34_plume", "error", "parameters")}
    text = artifacts.report_markdown(_context(tmp_path, maps))
    assert text.startswith("# S-MNN SST forecast, issued Dec 2006\n")
    assert text.count("S-MNN SST forecast") == 1
    assert text.index("![anomaly](anomaly.png)") < text.index("![nino34_plume]") < text.index(
        "![skill_vs_lead]") < text.index("## Scores") < text.index("![error]")
    assert "file://" not in text and "- forecast store: `f.zarr`" in text
    assert "| S-MNN | 1 | 0.22 |" in text and "0.2236" not in text
    assert "Global ocean RMSE at lead 1: **S-MNN 0.22 °C**" in text


def test_a_section_can_be_added(tmp_path):
    def history(context):
        return ["## Verification history", "", "three runs so far", ""]

    sections = (*artifacts.REPORT_SECTIONS[:3], history, *artifacts.REPORT_SECTIONS[3:])
    text = artifacts.report_markdown(_context(tmp_path), sections=sections)
    assert text.index("## Scores") < text.index("## Verification history") < text.index(
        "## Files")


def test_unscored_report_says_so(tmp_path):
    text = artifacts.report_markdown(_context(tmp_path, metrics=False))
    assert "not scored" in text and "| S-MNN" not in text


def test_embedded_report_shrinks_its_images_to_fit_the_budget(tmp_path):
    maps = {name: _noise_png(tmp_path / f"{name}.png", seed=i)
            for i, name in enumerate(("anomaly", "error", "bias", "sst"))}
    context = _context(tmp_path, maps)
    full = artifacts.embedded_report(context, budget=10**9)
    assert "data:image/webp;base64," in full and context.image_scale == 1.0
    budget = len(full.encode()) // 2
    small = artifacts.embedded_report(context, budget=budget)
    assert len(small.encode()) <= budget < len(full.encode())
    assert context.image_scale < 1.0


@pytest.mark.xdist_group("prefect")
def test_the_report_is_published_on_the_flow_run_that_calls_it(prefect_server, tmp_path):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    path = tmp_path / "report-standalone.md"
    path.write_text(artifacts.report_markdown(_context(tmp_path)))

    @flow(name="publishes-report", persist_result=False)
    def parent():
        artifacts.publish_report_file(path)

    state = parent(return_state=True)
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[artifacts.REPORT_KEY])))
    mine = [a for a in found if a.flow_run_id == state.state_details.flow_run_id]
    assert len(mine) == 1 and mine[0].description == (
        "Global ocean RMSE at lead 1: S-MNN 0.22 °C (climatology 0.50 °C, persistence 0.40 °C)")
    assert mine[0].description == artifacts.description(_context(tmp_path))
