"""metrics.json is strict JSON: scores that do not exist are null, not NaN."""

import json

import numpy as np
import pytest

from pipeline.evaluation.baselines import baseline_forecast
from pipeline.evaluation.metrics import evaluate


def strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_metrics_json_has_null_where_a_score_does_not_exist(model_store, tmp_path):
    inits = np.array(["1995-01-01", "1995-02-01"], dtype="datetime64[ns]")
    out = baseline_forecast("persistence", model_store, tmp_path / "p.zarr", inits=inits,
                            leads=2, train_end="1994-12")
    result = evaluate(out, model_store, tmp_path / "metrics")
    text = result.json_path.read_text()
    with pytest.raises(ValueError, match="NaN"):
        strict_json('{"acc": NaN}')  # the parser used below is strict
    payload = strict_json(text)
    assert payload["acc_definition"].startswith("uncentred anomaly correlation (WeatherBench 2)")
    nino = [r for r in payload["summary_mean_over_leads"] if r["region"] == "nino34"]
    assert nino and all(r["rmse"] is None for r in nino)  # no grid point within 5S-5N
    rows = [r for r in payload["rows"] if r["region"] == "nino34"]
    assert rows and all(r["acc"] is None and r["n_init"] == 0 for r in rows)
    glob = [r for r in payload["rows"] if r["region"] == "global"]
    assert all(isinstance(r["rmse"], float) for r in glob)
