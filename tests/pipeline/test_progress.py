"""pipeline.progress: one bar for terminals, Jupyter and Prefect."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline import progress as progress_module
from pipeline.progress import Progress, progress


def test_progress_counts_and_closes_without_prefect(capsys):
    seen = list(progress(range(5), desc="work", unit="item"))
    assert seen == [0, 1, 2, 3, 4]
    with Progress(10, "steps") as bar:
        bar.update(3)
        bar.update_to(7)
        assert bar.n == 7 and bar.percent == 70.0
    assert bar._artifact is None


def test_the_library_does_not_import_prefect_for_a_bar():
    code = ("import sys; from pipeline.progress import progress; list(progress([1, 2], "
            "desc='x')); print('prefect' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


class _Recorder:
    def __init__(self):
        self.created, self.updates = [], []


@pytest.fixture
def recorder(monkeypatch):
    """An artifact backend that records, as if under a flow run (the flows layer installs
    the Prefect one: flows/progress_artifacts.py)."""
    rec = _Recorder()

    class Backend:
        active = staticmethod(lambda: True)
        create = staticmethod(lambda progress, key, description: rec.created.append(
            (progress, key, description)) or "artifact-id")
        update = staticmethod(lambda handle, progress, description: rec.updates.append(
            (progress, description)))

    monkeypatch.setattr(progress_module, "_backend", Backend)
    monkeypatch.setattr(progress_module, "ARTIFACT_EVERY_S", 0.0)
    return rec


def test_under_prefect_the_bar_is_mirrored_in_a_progress_artifact(recorder):
    with Progress(4, "hindcast", unit="forecast") as bar:
        for _ in range(4):
            bar.update()
    assert recorder.created == [(0.0, "progress-hindcast", "hindcast: 0 of 4 forecasts")]
    assert recorder.updates[-1] == (100.0, "hindcast: finished, 4 of 4 forecasts")
    assert [u[0] for u in recorder.updates[:-1]] == [25.0, 50.0, 75.0, 100.0]


def test_a_step_that_ends_early_says_where_instead_of_100_percent(recorder):
    with pytest.raises(RuntimeError), Progress(120, "train", unit="step",
                                              key="progress-train") as bar:
        bar.update_to(48)
        raise RuntimeError("stop")
    assert recorder.updates[-1] == (40.0, "train: stopped at 48 of 120 steps (40 %)")
