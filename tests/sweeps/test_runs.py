"""litlab.runs: a run is a child process group that dies with its parent and reports its end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from litlab.sweeps.liveness import process_start

from litlab.runs import gpu_slots, launch_run, read_result, start_process
from tests.sweeps.wandb_records import read_wandb_run

# A child that starts a grandchild the way Lightning starts DDP ranks (a plain Popen of a
# process that calls die_with_parent, as `litlab` does first thing), prints both pids, waits.
CHAIN = """
import subprocess, sys, time
from litlab.runs import die_with_parent
die_with_parent()
leaf = "from litlab.runs import die_with_parent; die_with_parent(); import time; time.sleep(120)"
grandchild = subprocess.Popen([sys.executable, "-c", leaf])
print(grandchild.pid, flush=True)
time.sleep(120)
"""

PARENT = """
import sys, time
from pathlib import Path
from litlab.runs import start_process
child = start_process([sys.executable, "-c", sys.argv[1]], log_path=Path(sys.argv[2]))
print(child.pid, flush=True)
time.sleep(120)
"""


def _dead(pid: int) -> bool:
    return process_start(pid) is None


def _poll(predicate, seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_children_and_their_children_die_with_a_killed_parent(tmp_path):
    log = tmp_path / "child.log"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHAIN, str(log)], stdout=subprocess.PIPE, text=True
    )
    try:
        child = int(parent.stdout.readline())
        _poll(lambda: log.is_file() and log.read_text().strip(), 60, "the grandchild's pid")
        grandchild = int(log.read_text().split()[0])
        assert os.getpgid(child) == child != os.getpgid(parent.pid)  # its own process group
        assert not _dead(grandchild)
        parent.kill()  # SIGKILL: no cleanup code runs in the parent
        parent.wait(10)
        _poll(lambda: _dead(child) and _dead(grandchild), 20, "child and grandchild to die")
    finally:
        parent.kill()
        for pid in (locals().get("child"), locals().get("grandchild")):
            if pid and not _dead(pid):
                os.kill(pid, signal.SIGKILL)


def test_an_outcome_names_the_signal_and_the_exit_code(tmp_path):
    sleeper = start_process([sys.executable, "-c", "import time; time.sleep(60)"])
    sleeper.signal(signal.SIGKILL)
    assert sleeper.wait(20).describe() == "killed by SIGKILL"
    failing = start_process([sys.executable, "-c", "raise SystemExit(3)"])
    assert failing.wait(20).describe() == "exit code 3"


def test_a_run_gets_its_run_folder_log_and_gpus_and_its_result_is_read(tmp_path):
    script = (
        "import json, os, pathlib; d = pathlib.Path(os.environ['LITLAB_RUN_DIR']);"
        "(d / 'result.json').write_text(json.dumps({'status': 'finished', "
        "'gpus': os.environ['CUDA_VISIBLE_DEVICES']})); print('hello from the run')"
    )
    run_dir = tmp_path / "trial-0000"
    # launch_run starts `python -m litlab.cli ...`; here the same launcher runs a script.
    import litlab.runs as runs

    original = runs.litlab_command
    runs.litlab_command = lambda *args: [sys.executable, "-c", script]
    try:
        proc = launch_run(["fit"], run_dir, gpus="2,3")
    finally:
        runs.litlab_command = original
    assert proc.wait(30).returncode == 0
    assert "hello from the run" in (run_dir / "fit.log").read_text()
    assert read_result(run_dir) == {"status": "finished", "gpus": "2,3"}
    (run_dir / "result.json").write_text("{not json")
    assert read_result(run_dir) is None


# A process that has started a W&B run (as an earlier in-process fit, or a sweep's summary run
# would) holds its W&B service's token in its environment, then launches a run that logs to W&B.
WANDB_PARENT = """
import os, sys
import wandb
from litlab.runs import start_process
wandb.init(mode="offline", dir=sys.argv[1])
assert os.environ.get("WANDB_SERVICE")
child = "import sys, wandb; wandb.init(mode='offline', dir=sys.argv[1], config={'trial': 7})"
print(start_process([sys.executable, "-c", child, sys.argv[2]]).wait(120).returncode, flush=True)
sys.stdin.readline()  # its own service lives on until the test has read the child's run
"""


def test_a_run_writes_its_wandb_run_with_its_own_service_before_it_exits(tmp_path):
    # Attached to the parent's service, the child's records stayed in that service's buffers
    # after the child had exited: its run file held no run record.
    parent = subprocess.Popen(
        [sys.executable, "-c", WANDB_PARENT, str(tmp_path / "parent"), str(tmp_path / "child")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    try:
        assert parent.stdout.readline().strip() == "0"
        (run_file,) = (tmp_path / "child" / "wandb").glob("offline-run-*/run-*.wandb")
        run_id, _, config = read_wandb_run(run_file)  # its run record and its exit record
        assert run_file.name == f"run-{run_id}.wandb" and config["trial"] == 7
    finally:
        parent.communicate("\n", timeout=60)


# A child that leaves two processes in its group: one that ends on its own a second later
# (after writing a file), and one that would sleep for two minutes.
LEAVER = """
import subprocess, sys
slow = "import pathlib, sys, time; time.sleep(1); pathlib.Path(sys.argv[1]).write_text('done')"
subprocess.Popen([sys.executable, "-c", slow, sys.argv[1]])
stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(stuck.pid, flush=True)
"""


def test_a_runs_group_gets_a_bounded_while_to_exit_after_the_run_ends(tmp_path):
    log = tmp_path / "leaver.log"
    proc = start_process([sys.executable, "-c", LEAVER, str(tmp_path / "done")], log_path=log)
    proc.exit_grace = 4.0
    outcome = proc.wait(60)
    stuck = int(log.read_text().split()[0])
    assert outcome.returncode == 0
    assert (tmp_path / "done").read_text() == "done"  # not killed while it was finishing
    _poll(lambda: _dead(stuck), 10, "the stuck process to be killed")
    assert 4.0 <= time.monotonic() - proc.started < 60  # killed at the deadline, not before


def test_gpu_slots_split_the_gpus_between_concurrent_trials():
    assert gpu_slots("0,1,2,3", 2) == ["0,1", "2,3"]
    assert gpu_slots("0, 1", 1) == ["0", "1"]
    with pytest.raises(ValueError, match="not a multiple of --gpus-per-trial 2"):
        gpu_slots("0,1,2", 2)
