"""Training loop: exact resume, signals, divergence, early stopping, logs."""

import copy
import json
import os
import signal

import pytest
import torch

from pipeline.model import train as train_module
from pipeline.model.run import load_checkpoint
from pipeline.model.train import TrainingDiverged, TrainingInterrupted, train


def weights(path):
    return load_checkpoint(path)["model"]


def test_an_interrupted_and_resumed_run_ends_with_the_same_weights(
    model_store, tmp_path, tiny_config
):
    config = tiny_config.model_copy(
        update={"train": tiny_config.train.model_copy(update={"max_steps": 6})})
    train(model_store, tmp_path / "whole", config=config)

    def interrupt(fraction, metrics):
        if metrics["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted, match="resume"):
        train(model_store, tmp_path / "parts", config=config, progress=interrupt)
    assert load_checkpoint(tmp_path / "parts" / "last.pt")["progress"]["step"] == 3
    train(model_store, tmp_path / "parts", resume=True)

    a, b = weights(tmp_path / "whole" / "last.pt"), weights(tmp_path / "parts" / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_time_budget_that_does_not_end_the_run_leaves_it_bit_for_bit_the_same(
    model_store, tmp_path, tiny_config
):
    # Right after the warmup the step schedule's share is 0; time spent must not lower the
    # learning rate there while the steps, not the budget, end the run.
    config = tiny_config.model_copy(update={"train": tiny_config.train.model_copy(
        update={"max_steps": 6, "warmup_steps": 2})})
    budget = config.model_copy(update={"train": config.train.model_copy(
        update={"max_minutes": 0.2})})  # 12 s: a step would need 2 s to make it bind
    train(model_store, tmp_path / "steps", config=config)
    train(model_store, tmp_path / "budget", config=budget)
    a, b = weights(tmp_path / "steps" / "last.pt"), weights(tmp_path / "budget" / "last.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(("elapsed", "step", "expected"), [
    (60.0, 100, 0.0),  # 1,000 steps take 600 s of the 3,600: the steps end the run
    (600.0, 100, 600.0 / 3600),  # 1,000 steps would take 6,000 s: the budget does
    (1.0, 0, 0.0),  # no pace yet
])
def test_the_budget_shapes_the_schedule_only_when_it_ends_the_run_first(elapsed, step,
                                                                        expected):
    assert train_module._budget_fraction(elapsed, 3600.0, step, 1000) == expected
    assert train_module._budget_fraction(elapsed, None, step, 1000) == 0.0


def test_ranks_take_the_learning_rate_of_the_slowest_ranks_clock(
    model_store, tmp_path, tiny_config, monkeypatch
):
    # A second rank that spends 5 s a step: its clock, reduced by the stop check, must set
    # this rank's time share too, or the ranks would step with different learning rates.
    slow = [0.0]

    def any_of(self, *values):
        slow[0] += 5.0
        return [max(values[0], slow[0]), *values[1:]]

    monkeypatch.setattr(train_module._Distributed, "any_of", any_of)
    config = tiny_config.model_copy(update={"train": tiny_config.train.model_copy(
        update={"max_steps": 6, "warmup_steps": 1, "log_every": 1, "max_minutes": 0.2})})
    train(model_store, tmp_path / "run", config=config)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().split("\n")
             if x]
    lrs = [x["lr"] for x in lines if "lr" in x]
    budget, steps = 12.0, 6
    want = [train_module._lr_at(k, config, train_module._budget_fraction(5.0 * k, budget, k,
                                                                           steps))
            for k in range(len(lrs))]
    assert len(lrs) == 3  # 15 s of the slow rank's clock end the 12 s budget at step 3
    assert lrs == pytest.approx(want, rel=1e-12)
    assert lrs[1] < train_module._lr_at(1, config)  # the budget binds: a lower rate
    assert load_checkpoint(tmp_path / "run" / "last.pt")["progress"]["elapsed"] == 15.0


def test_a_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(
    model_store, tmp_path, tiny_config, monkeypatch
):
    calls = {"n": 0}
    real = train_module.masked_mse

    def poisoned(*args):
        calls["n"] += 1
        loss = real(*args)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(train_module, "masked_mse", poisoned)
    with pytest.raises(TrainingDiverged, match=r"step 2: loss nan.*last\.pt"):
        train(model_store, tmp_path / "run", config=tiny_config)
    kept = load_checkpoint(tmp_path / "run" / "last.pt")
    assert kept["progress"]["step"] == 2


def test_training_logs_loss_and_throughput_and_reports_progress(
    model_store, tmp_path, tiny_config
):
    seen = []
    best = train(model_store, tmp_path / "run", config=tiny_config,
                 progress=lambda f, m: seen.append(f))
    assert best.name == "best.pt" and best.exists()
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().split("\n")
             if x]
    steps = [x for x in lines if "loss" in x]
    assert [x["step"] for x in steps] == [1, 2, 3, 4]
    assert all(x["samples_per_s"] > 0 for x in steps)
    assert any("val_loss" in x for x in lines)
    assert seen == [0.25, 0.5, 0.75, 1.0]
    meta = load_checkpoint(best)["meta"]
    assert meta["fit_end"] == "1997-12-01"  # 24 validation months held out of 1980-1999


def test_early_stopping_ends_a_run_that_stops_improving(model_store, tmp_path, tiny_config):
    config = tiny_config.model_copy(update={"train": tiny_config.train.model_copy(
        update={"lr": 1e-12, "val_every": 1, "patience": 1, "max_steps": 50})})
    train(model_store, tmp_path / "run", config=config)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["progress"]["step"] < 5


def test_a_new_run_refuses_to_overwrite_an_existing_one(model_store, tmp_path, tiny_config):
    train(model_store, tmp_path / "run", config=tiny_config)
    with pytest.raises(ValueError, match="resume=True"):
        train(model_store, tmp_path / "run", config=tiny_config)


def test_checkpoints_load_with_weights_only(model_store, tmp_path, tiny_config):
    train(model_store, tmp_path / "run", config=tiny_config)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["config"]["model"]["latent_dim"] == 4


def test_a_checkpoint_of_the_unfused_optimiser_resumes_fused_with_the_same_updates(
    tiny_config
):
    def model_and_grads():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.SiLU(), torch.nn.Linear(8, 1))
        return model, lambda: model(torch.linspace(-1, 1, 12).reshape(3, 4)).square().sum()

    old, loss = model_and_grads()
    unfused = torch.optim.AdamW(old.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(3):
        unfused.zero_grad()
        loss().backward()
        unfused.step()
    new, new_loss = model_and_grads()
    new.load_state_dict(old.state_dict())
    fused = train_module._optimiser(new, tiny_config)
    # a copy, as a checkpoint is: a state_dict shares its tensors with the optimiser
    train_module._load_optimiser(fused, copy.deepcopy(unfused.state_dict()))
    assert all(group["fused"] for group in fused.param_groups)
    for optimiser, objective in ((unfused, loss), (fused, new_loss)):
        optimiser.zero_grad()
        objective().backward()
        optimiser.step()
    for a, b in zip(old.parameters(), new.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert fused.state_dict()["state"][0]["step"] == 4


def test_training_runs_with_its_own_thread_counts_and_restores_the_callers(
    model_store, tmp_path, tiny_config, monkeypatch
):
    import smnn

    seen = []
    real = train_module.Trainer._step

    def step(self, batch):
        seen.append((torch.get_num_threads(), smnn.get_num_threads()))
        return real(self, batch)

    monkeypatch.setattr(train_module.Trainer, "_step", step)
    config = tiny_config.model_copy(update={"train": tiny_config.train.model_copy(
        update={"max_steps": 2, "network_threads": 1, "solver_threads": 3})})
    torch_before = torch.get_num_threads()
    torch.set_num_threads(2)
    previous = smnn.set_num_threads(None)
    try:
        train(model_store, tmp_path / "run", config=config)
        assert seen == [(1, 3), (1, 3)]
        assert torch.get_num_threads() == 2
        assert smnn.set_num_threads(None) is None  # the caller's setting came back
    finally:
        smnn.set_num_threads(previous)
        torch.set_num_threads(torch_before)


@pytest.mark.parametrize("align_weight", [0.0, 0.5])
def test_batches_carry_the_neighbour_windows_only_for_the_alignment_loss(
    model_store, tmp_path, tiny_config, monkeypatch, align_weight
):
    keys, encodes, encoded = [], [], []
    real_step, real_encode = train_module.Trainer._step, train_module.MechanisticIdentifier.encode

    def step(self, batch):
        keys.append(set(batch))
        before = len(encoded)
        out = real_step(self, batch)
        encodes.append(len(encoded) - before)
        return out

    def encode(self, context, covariates=None):
        encoded.append(len(context))
        return real_encode(self, context, covariates)

    monkeypatch.setattr(train_module.Trainer, "_step", step)
    monkeypatch.setattr(train_module.MechanisticIdentifier, "encode", encode)
    config = tiny_config.model_copy(update={
        "model": tiny_config.model.model_copy(update={"align_weight": align_weight}),
        "train": tiny_config.train.model_copy(update={"max_steps": 2, "val_every": 1000})})
    train(model_store, tmp_path / "run", config=config)
    assert len(keys) == 2
    assert all(("neighbour" in k) == (align_weight > 0) for k in keys)
    # a step encodes the context, and the neighbour too for the alignment loss
    assert encodes == [2 if align_weight else 1] * 2


@pytest.mark.parametrize(("mode_leads", "fitted"), [(2, 3), (12, 6)])
def test_the_mode_dynamics_are_fitted_out_to_the_last_lead_the_blend_uses(
    model_store, tmp_path, tiny_config, mode_leads, fitted
):
    # Past twice mode_leads the blend ignores them: fitting further would cost solve steps
    # and pull the fit towards leads it never forecasts. The tiny horizon is 6 leads.
    config = tiny_config.model_copy(update={
        "model": tiny_config.model.model_copy(update={"mode_leads": mode_leads}),
        "train": tiny_config.train.model_copy(update={"max_steps": 2, "mode_steps": 2})})
    train(model_store, tmp_path / "run", config=config)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().split("\n")
             if x]
    (summary,) = [x["mode_dynamics"] for x in lines if "mode_dynamics" in x]
    assert summary["horizon"] == fitted
