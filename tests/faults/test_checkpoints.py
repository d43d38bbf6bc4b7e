"""Corrupt or truncated checkpoints end with one line naming the file, not a torch traceback."""

import pickle

import pytest

from flows.cli import main
from pipeline.model.run import LAST, load_checkpoint, load_model


def _variants(good: bytes) -> dict[str, bytes]:
    return {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "one byte": good[:1],
        "legacy pickle cut short": pickle.dumps({"model": list(range(1000))})[:40],
        "garbage": b"\x00\xff" * 300,
        "foreign pickle": pickle.dumps({"x": 1}),
    }


@pytest.mark.parametrize(
    "kind",
    ["truncated", "empty", "one byte", "legacy pickle cut short", "garbage", "foreign pickle"],
)
def test_a_damaged_checkpoint_is_one_line_naming_the_file(trained_model_run, tmp_path, kind):
    _, run = trained_model_run
    bad = tmp_path / "run"
    bad.mkdir()
    (bad / LAST).write_bytes(_variants((run / LAST).read_bytes())[kind])
    with pytest.raises(ValueError) as info:
        load_checkpoint(bad / LAST)
    message = str(info.value)
    assert str(bad / LAST) in message
    assert "\n" not in message
    with pytest.raises(ValueError, match="checkpoint .*last.pt"):
        load_model(bad)


def test_a_checkpoint_that_is_a_folder_is_reported_by_name(tmp_path):
    # open() on a directory raises IsADirectoryError / EINVAL depending on the platform
    (tmp_path / LAST).mkdir()
    with pytest.raises(ValueError, match=f"checkpoint {tmp_path / LAST}"):
        load_checkpoint(tmp_path / LAST)


def test_the_cli_prints_one_line_for_a_truncated_checkpoint(
    trained_model_run, tmp_path, capsys
):
    store, run = trained_model_run
    bad = tmp_path / "run"
    bad.mkdir()
    (bad / LAST).write_bytes((run / LAST).read_bytes()[:1000])
    code = main(["forecast", "--run-dir", str(bad), "--store", str(store), "--init", "1995-12",
                 "--out", str(tmp_path / "f.zarr")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and str(bad / LAST) in err and "Traceback" not in err
