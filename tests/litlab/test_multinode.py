"""One ``litlab fit`` across two nodes through torchrun (two node ranks on localhost, gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from litlab.cli import run_cli
from tests.tiny_liver import TINY_LIVER

LIVER = [
    "--config",
    "liver-deeplabv3plus",
    *TINY_LIVER,
    "--trainer.enable_progress_bar=false",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two torchrun node processes and a validation
def test_two_node_torchrun_fit_matches_a_single_process_test(tmp_path: Path) -> None:
    """The launcher users already have: `torchrun --nnodes 2 --node_rank R --master_addr ...`.

    Each node rank is its own torchrun (here both on localhost); Lightning reads the torchrun
    environment. Both nodes write to one run folder (LITLAB_RUN_DIR), as on a shared filesystem.
    The 2-node job's synced metrics equal a single-process run of its checkpoint on the same data.
    """
    run_dir = tmp_path / "two-nodes"
    port = _free_port()
    env = {
        **os.environ,
        "LITLAB_RUN_DIR": str(run_dir),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    nodes = [
        subprocess.Popen(
            [
                *torchrun,
                "--nnodes=2",
                f"--node_rank={rank}",
                "--nproc_per_node=1",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                "-m",
                "litlab.cli",
                "fit",
                *LIVER,
                "--trainer.num_nodes=2",
                "--trainer.devices=1",
                "--trainer.strategy=ddp",
                "--trainer.max_epochs=1",
                "--test_after_fit=false",
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    try:
        logs = [node.communicate(timeout=600)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    for node, log in zip(nodes, logs, strict=True):
        assert node.returncode == 0, log[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in "".join(logs)

    # Its kept epoch's synced val metrics (4 val slices, 2 per node: no padding) equal a
    # single-process validation of the checkpoint it kept.
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "finished" and result["kept_epoch"] == 0
    single = run_cli(
        [
            "validate",
            *LIVER,
            f"--ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}",
            f"--trainer.default_root_dir={tmp_path / 'single'}",
        ]
    )
    for key in ("val/miou", "val/dice_liver", "val/pixel_acc"):
        assert float(single.trainer.callback_metrics[key]) == pytest.approx(
            result["val"][key], abs=1e-6
        ), key
