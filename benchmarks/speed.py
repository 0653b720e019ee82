"""``make bench`` figures for where users wait: command latency, the FER2013 byte-scan floor,
batched augmentation (images/s per core, per-sample vs batched) and a FER2013 epoch both ways."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

COMMANDS = (
    "fit", "validate", "test", "predict", "sweep", "cv", "preview", "report", "export", "db",
    "dashboard", "workflow",
)  # fmt: skip
LIGHT_COMMANDS = (["presets"], ["--help"], *([c, "--help"] for c in COMMANDS))


def _litlab() -> list[str]:
    """The console script users run (the same program name, so the same cached help texts)."""
    script = Path(sys.executable).parent / "litlab"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "litlab.cli"]


def _wall(argv: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([*_litlab(), *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"litlab {' '.join(argv)} failed: {done.stderr.strip()[-400:]}")
    return time.perf_counter() - t0


REPORT_ARMS = (
    "fer2013-resnet50", "fer2013-resnet50-standard", "fer2013-resnet50-noaug",
    "fer2013-resnet50-adam",
)  # fmt: skip


def report_runs(root: Path) -> Path:
    """Finished (tiny) runs of every FER2013 report arm under ``root``, made once and reused:
    what ``litlab report fer2013`` reads."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    for arm in REPORT_ARMS:
        if any((root / arm).glob("*/result.json")):
            continue
        args = [
            "fit", "--config", arm, "--data.synthetic_rows=300", "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
            "--trainer.limit_test_batches=1", "--model.backbone=resnet18",
            f"--output_dir={root}", "--wandb_mode=disabled", "--trainer.enable_progress_bar=false",
        ]  # fmt: skip
        subprocess.run([*_litlab(), *args], env=env, check=True, capture_output=True)
    return root


def command_latency(report_args: list[str] | None, repeat: int = 5) -> dict[str, object]:
    """Wall seconds of ``litlab <command>`` in a fresh process: the first call (for ``--help``
    of a heavy command on a new install or after a source change, this builds and caches the
    text) and the best of ``repeat`` later calls, with the 1-minute load average beside them."""
    commands = [*LIGHT_COMMANDS]
    if report_args is not None:
        commands.append(["report", *report_args])
    out: dict[str, object] = {}
    for argv in commands:
        load = os.getloadavg()[0]
        try:
            first = _wall(argv)
        except RuntimeError as err:  # reported, and the other figures still come
            out["litlab " + " ".join(argv[:2])] = {"error": str(err)}
            continue
        best = min(_wall(argv) for _ in range(repeat))
        out["litlab " + " ".join(argv[:2])] = {
            "best_s": round(best, 3),
            "first_s": round(first, 2),
            "load_1m": round(load, 2),
        }
    return out


def byte_scan_floor(path: Path) -> float:
    """Seconds of the physical floor: read the bytes and look at every one once (one vectorised
    comparison and count); any parser does at least this."""
    t0 = time.perf_counter()
    buf = np.frombuffer(path.read_bytes(), np.uint8)
    np.count_nonzero(buf == 32)
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
    kornia, own = out["batched_kornia"], out["batched_litlab_grid"]
    out["choice"] = (
        "litlab's own grid: kornia is not installed"
        if kornia != kornia
        else "litlab's own grid: faster than kornia here, and no extra dependency"
        if own >= kornia
        else "litlab's own grid: within 25 % of kornia here (run-to-run noise on a loaded "
        "machine), per image equal to torchvision's affine, and no extra dependency"
        if own >= 0.75 * kornia
        else "kornia is clearly faster here: reconsider litlab's own grid"
    )
    return out


def fer2013_epoch_seconds(rows: int, epochs_args: list[str]) -> dict[str, float]:
    """Wall seconds of one FER2013-preset epoch on CPU, per-sample vs batched augmentation, each
    a fresh ``litlab fit`` process (start-up included). ``make bench`` swaps the preset's
    ResNet-50 with its 48-px stem for a ResNet-18 with the standard stem: on a CPU the preset's
    own model takes minutes an epoch, which hides the loader."""
    out = {}
    env = {**os.environ, "WANDB_MODE": "disabled"}
    for how in ("sample", "batch"):
        args = [
            "fit", "--config", "fer2013-resnet50", f"--data.augment_on={how}",
            f"--data.synthetic_rows={rows}", "--trainer.max_epochs=1",
            "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
            "--test_after_fit=false", "--wandb_mode=disabled", "--output_dir=runs/bench",
            "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", *epochs_args,
        ]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run([*_litlab(), *args], env=env, check=True, capture_output=True)
        out[f"epoch_s_augment_on_{how}"] = round(time.perf_counter() - t0, 2)
    out["sample_over_batch"] = round(
        out["epoch_s_augment_on_sample"] / out["epoch_s_augment_on_batch"], 2
    )
    return out
