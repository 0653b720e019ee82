"""``make bench`` figures for where users wait: command latency, the FER2013 byte scan, batched
augmentation (images/s per core, per-sample vs batched) and a FER2013 epoch both ways."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

LIGHT_COMMANDS = (["presets"], ["--help"], ["fit", "--help"])


def command_latency(run_dir: Path | None, repeat: int = 3) -> dict[str, float]:
    """Best-of-``repeat`` wall seconds of ``litlab <command>`` in a fresh interpreter."""
    commands = [*LIGHT_COMMANDS]
    if run_dir is not None:
        commands.append(["report", "fer2013", "--runs", str(run_dir), "--no-data-check"])
    out = {}
    for argv in commands:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "litlab.cli", *argv], capture_output=True, check=False
            )
            best = min(best, time.perf_counter() - t0)
        out["litlab " + " ".join(argv[:2])] = round(best, 3)
    return out


def byte_scan_floor(path: Path) -> float:
    """Seconds of the physical floor: read the bytes and find every separator once."""
    t0 = time.perf_counter()
    buf = np.frombuffer(path.read_bytes(), np.uint8)
    np.flatnonzero((buf == 32) | (buf == 44) | (buf == 10))
    return time.perf_counter() - t0


def augmentation_rate(batch: int = 64, side: int = 48, batches: int = 20) -> dict[str, float]:
    """Images/s per core of the paper's augmentation: per sample (torchvision v2, as the
    DataLoader runs it), batched (litlab's one-grid path), and torchvision v2 on a batch
    (one draw for the whole batch: not the paper's semantics, shown for scale)."""
    from litlab.datamodules.augment import paper_augmentation
    from litlab.datamodules.batch_augment import BatchPaperAugmentation

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per core
    try:
        x = torch.randint(0, 256, (batch, 1, side, side), dtype=torch.uint8)
        per_sample, batched = paper_augmentation(), BatchPaperAugmentation()

        def rate(fn) -> float:
            fn()
            t0 = time.perf_counter()
            for _ in range(batches):
                fn()
            return batch * batches / (time.perf_counter() - t0)

        out = {
            "per_sample_torchvision_v2": rate(lambda: [per_sample(img) for img in x]),
            "batched_litlab_grid": rate(lambda: batched(x)),
            "torchvision_v2_one_draw_per_batch": rate(lambda: per_sample(x)),
        }
        try:
            import kornia.augmentation as K

            korn = K.AugmentationSequential(
                K.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10,
                               resample="nearest"),
                K.RandomHorizontalFlip(),
            )  # fmt: skip
            xf = x.float()
            out["batched_kornia"] = rate(lambda: korn(xf))
        except ImportError:
            out["batched_kornia"] = float("nan")  # not installed: pip install kornia to compare
    finally:
        torch.set_num_threads(threads)
    out = {k: round(v, 1) for k, v in out.items()}
    out["batched_over_per_sample"] = round(
        out["batched_litlab_grid"] / out["per_sample_torchvision_v2"], 2
    )
    return out


def fer2013_epoch_seconds(rows: int, epochs_args: list[str]) -> dict[str, float]:
    """Wall seconds of one FER2013-preset epoch on CPU (resnet18 to keep it short), per-sample
    vs batched augmentation, each a fresh ``litlab fit`` process."""
    out = {}
    env = {**os.environ, "WANDB_MODE": "disabled"}
    for how in ("sample", "batch"):
        args = [
            "fit", "--config", "fer2013-resnet50", f"--data.augment_on={how}",
            f"--data.synthetic_rows={rows}", "--trainer.max_epochs=1",
            "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
            "--test_after_fit=false", "--wandb_mode=disabled", "--output_dir=runs/bench",
            "--trainer.accelerator=cpu", *epochs_args,
        ]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "litlab.cli", *args], env=env, check=True,
                       capture_output=True)  # fmt: skip
        out[f"epoch_s_augment_on_{how}"] = round(time.perf_counter() - t0, 2)
    out["sample_over_batch"] = round(
        out["epoch_s_augment_on_sample"] / out["epoch_s_augment_on_batch"], 2
    )
    return out
