"""DistributedDataParallel training with two CPU processes (gloo) under torchrun."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
from pipeline.model.config import config_from_dict
from pipeline.model.train import train
config = config_from_dict({config!r})
train({store!r}, {run!r}, config=config)
print("rank done")
"""


@pytest.mark.slow
def test_two_cpu_processes_train_one_model(model_store, tmp_path, tiny_config):
    raw = tiny_config.model_dump()
    raw["train"]["max_steps"] = 2
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.format(config=raw, store=str(model_store),
                                    run=str(tmp_path / "run")))
    with socket.socket() as probe:  # a free loopback port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Own process group, so a hung rendezvous cannot leave orphaned workers holding the pipes.
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(port), str(script)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        start_new_session=True,
    )
    try:
        stdout, stderr = launcher.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        stdout, stderr = launcher.communicate()
        pytest.fail(f"torchrun did not finish in 300 s:\n{stderr[-3000:]}")
    done = subprocess.CompletedProcess(launcher.args, launcher.returncode, stdout, stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    from pipeline.model.run import load_checkpoint

    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["progress"]["step"] == 2
    log = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"step": 2' in log
    assert done.stdout.count("rank done") == 2
