"""`sstcast train|forecast|hindcast|evaluate` end to end on a tiny store."""

import json

from flows.cli import main
from pipeline.forecast_store import open_forecast

TINY_TOML = """
[model]
n_dct = 8
encoder_width = 8
encoder_depth = 1
latent_dim = 2
decoder_width = 8
init_steps = 2
[window]
context = 24
horizon = 3
location_stride = 2
[train]
batch_size = 32
max_steps = 1
val_steps = 12
val_samples = 64
max_minutes = 5.0
"""


def test_train_uses_only_data_up_to_train_end(model_store, tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    code = main(["train", "--store", str(model_store), "--run-dir", str(tmp_path / "run"),
                 "--config", str(config), "--train-end", "1990-12"])
    assert code == 0
    assert capsys.readouterr().out.strip().endswith("best.pt")
    log = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"step": 1' in log
    from pipeline.model.run import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "last.pt")["meta"]["fit_end"] == "1989-12-01"


def test_forecast_hindcast_and_evaluate(trained_model_run, tmp_path, capsys):
    store, run = trained_model_run
    assert main(["forecast", "--run-dir", str(run), "--store", str(store), "--init", "1996-06",
                 "--leads", "3", "--out", str(tmp_path / "f.zarr")]) == 0
    assert open_forecast(tmp_path / "f.zarr").lead.size == 3
    assert main(["hindcast", "--run-dir", str(run), "--store", str(store), "--start", "1996-01",
                 "--end", "1996-04", "--out", str(tmp_path / "h.zarr")]) == 0
    assert open_forecast(tmp_path / "h.zarr").init_time.size == 4
    assert main(["evaluate", "--forecast", str(tmp_path / "h.zarr"), "--truth", str(store),
                 "--out", str(tmp_path / "m"), "--regions", "global,tropics"]) == 0
    rows = json.loads((tmp_path / "m" / "metrics.json").read_text())["rows"]
    assert {r["region"] for r in rows} == {"global", "tropics"}
    assert "mechanistic_identifier" in capsys.readouterr().out


def test_a_bad_date_is_a_usage_error(trained_model_run, tmp_path, capsys):
    store, run = trained_model_run
    code = main(["forecast", "--run-dir", str(run), "--store", str(store), "--init", "June",
                 "--out", str(tmp_path / "x.zarr")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == ("sstcast forecast: error: --init: expected a date YYYY-MM[-DD], "
                   "got 'June'")
    assert not (tmp_path / "x.zarr").exists()


def test_an_issue_time_without_history_fails_with_one_line(trained_model_run, tmp_path,
                                                           capsys):
    store, run = trained_model_run
    code = main(["forecast", "--run-dir", str(run), "--store", str(store), "--init", "1980-03",
                 "--out", str(tmp_path / "x.zarr")])
    assert code == 2
    assert "history" in capsys.readouterr().err
