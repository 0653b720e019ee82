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


def test_gpu_slots_split_the_gpus_between_concurrent_trials():
    assert gpu_slots("0,1,2,3", 2) == ["0,1", "2,3"]
    assert gpu_slots("0, 1", 1) == ["0", "1"]
    with pytest.raises(ValueError, match="not a multiple of --gpus-per-trial 2"):
        gpu_slots("0,1,2", 2)
