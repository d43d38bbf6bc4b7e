"""Resuming a run logs every step once; a failed run leaves no empty folder behind."""

import json
import os
import signal

import pytest

from pipeline.model import train as train_module
from pipeline.model.train import LOG, TrainingInterrupted, train


def _steps(run):
    lines = (run / LOG).read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if "loss" in json.loads(line)]


def test_a_resumed_run_logs_each_step_once(model_store, tmp_path, tiny_config):
    # A hard kill after step 6 leaves the step-4 checkpoint and a log up to step 6 (plus a
    # torn line): the resume redoes steps 5 and 6 and must not log them twice.
    t = tiny_config.train.model_copy(update={"max_steps": 8, "log_every": 1,
                                             "checkpoint_every": 4, "val_every": 100})
    config = tiny_config.model_copy(update={"train": t})
    run = tmp_path / "run"
    saved = {}

    def interrupt(fraction, metrics):
        if metrics["step"] == 5:  # last.pt now holds step 4
            saved["last"] = (run / "last.pt").read_bytes()
        if metrics["step"] == 6:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(model_store, run, config=config, progress=interrupt)
    (run / "last.pt").write_bytes(saved["last"])  # as if killed hard after step 6
    with open(run / LOG, "a") as handle:
        handle.write('{"step": 7, "lo')  # and torn mid-line
    train(model_store, run, resume=True)
    steps = _steps(run)
    assert steps == list(range(1, 9))


def test_a_fresh_run_does_not_append_to_an_old_log(model_store, tmp_path, tiny_config):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOG).write_text('{"step": 1, "loss": 99.0}\n')  # left by a run that never saved
    t = tiny_config.train.model_copy(update={"max_steps": 2, "log_every": 1})
    train(model_store, run, config=tiny_config.model_copy(update={"train": t}))
    assert _steps(run) == [1, 2]


def test_a_train_that_fails_leaves_no_empty_run_folder(model_store, tmp_path, tiny_config):
    with pytest.raises(ValueError, match="train_end"):
        train(model_store, tmp_path / "run", config=tiny_config, train_end="1700-01")
    assert not (tmp_path / "run").exists()
    mine = tmp_path / "mine"  # but a folder the caller made is theirs: left as it was
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError):
        train(model_store, mine, config=tiny_config, train_end="1700-01")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_a_train_that_fails_before_its_first_checkpoint_leaves_no_folder(
    model_store, tmp_path, tiny_config, monkeypatch
):
    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(train_module, "masked_mse", broken)
    with pytest.raises(RuntimeError, match="boom"):
        train(model_store, tmp_path / "new" / "run", config=tiny_config)
    assert not (tmp_path / "new" / "run").exists()

