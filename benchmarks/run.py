"""``make bench``: speed measured as ratios, side by side in one run.

1. FER2013 CSV parsing: litlab's byte scan vs the common per-row pandas approach on a full-size
   (35,887-row) FER2013-format file (identical arrays asserted), beside the floor of reading the
   bytes and looking at each once, plus the cached reload. Then batched vs per-sample
   augmentation (images/s per core), one FER2013-preset CPU epoch both ways, and the latency of
   every light command (best of 5, load average beside it), and the FER2013 ResNet-50's
   training images/s with the paper's 48-px stem vs the standard stem.
2. Training throughput: ``litlab fit`` (LightningCLI + Trainer + callbacks + loggers) vs a plain
   PyTorch loop on the same model, data, batch size and optimiser; images/s and their ratio.
3. On a GPU only: the liver DeepLabV3Plus at 224x224, fp32 vs bf16 autocast images/s.

Timings are noisy on shared machines: read the ratios, which compare runs made back to back.
Results are printed and written to ``runs/bench/bench-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from litlab.datamodules.cache import cache_root
from litlab.datamodules.fer2013 import FER2013DataModule
from litlab.datamodules.fer2013_csv import load_fer2013_cached, parse_fer2013_csv
from litlab.datamodules.synthetic.fer2013 import write_fer2013_csv
from litlab.lightning_modules.classification import ClassificationModule

from benchmarks.speed import (
    augmentation_rate,
    byte_scan_floor,
    command_latency,
    fer2013_epoch_seconds,
    report_runs,
)

FULL_ROWS = 35_887


def _timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def pandas_per_row(path: Path) -> np.ndarray:
    """The usual FER2013 loader: read_csv, then split each row's pixel string in Python."""
    import pandas as pd

    df = pd.read_csv(path)
    return np.stack([np.array(s.split(), dtype=np.uint8).reshape(48, 48) for s in df["pixels"]])


def pd_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The emotion and Usage columns as pandas reads them."""
    import pandas as pd

    df = pd.read_csv(path, usecols=["emotion", "Usage"])
    return df["emotion"].to_numpy(np.int64), df["Usage"].to_numpy(str)


def bench_csv(rows: int, repeat: int) -> dict:
    path = cache_root() / "bench" / f"fer2013-full-{rows}.csv"
    if not path.is_file():
        print(f"generating a {rows}-row FER2013-format CSV at {path} (once)...", flush=True)
        write_fer2013_csv(path, rows, seed=7)
    path.read_bytes()  # into the page cache first: every reader below starts from memory
    litlab_s = pandas_s = float("inf")
    for _ in range(repeat):  # interleaved, so a burst of load on a shared machine hits both
        t, data = _timed(lambda: parse_fer2013_csv(path))
        litlab_s = min(litlab_s, t)
        t, ref = _timed(lambda: pandas_per_row(path))
        pandas_s = min(pandas_s, t)
    assert np.array_equal(ref, data.images), "parsers disagree"
    labels = pd_labels(path)
    assert np.array_equal(labels[0], data.labels) and np.array_equal(labels[1], data.usage)
    cache_dir = cache_root() / "bench" / "cache"
    for f in cache_dir.glob("*.npz"):
        f.unlink()
    first_s, _ = _timed(lambda: load_fer2013_cached(path, cache_dir=cache_dir))
    reload_s, _ = _timed(lambda: load_fer2013_cached(path, cache_dir=cache_dir), repeat)
    floor_s = min(byte_scan_floor(path) for _ in range(repeat))
    return {
        "rows": rows,
        "csv_mb": round(path.stat().st_size / 2**20, 1),
        "load_1m": round(os.getloadavg()[0], 2),
        "byte_scan_floor_s": round(floor_s, 3),
        "litlab_over_floor": round(litlab_s / floor_s, 2),
        "litlab_parse_s": round(litlab_s, 3),
        "pandas_per_row_s": round(pandas_s, 3),
        "speedup_vs_pandas": round(pandas_s / litlab_s, 2),
        "identical_output": True,  # asserted above
        "first_load_with_cache_write_s": round(first_s, 3),
        "cached_reload_s": round(reload_s, 3),
    }


class _StepTimer(pl.Callback):
    """Wall time of training steps after ``warmup`` steps (data loading included)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.t0: float | None = None
        self.steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warmup:
            self.steps += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - (self.t0 or time.perf_counter())


def _litlab_fit(args: list[str], warmup: int) -> float:
    from litlab.cli import run_cli

    timer = _StepTimer(warmup)
    run_cli(["fit", *args], extra_callbacks=[timer])
    return timer.steps / timer.seconds


def _raw_loop(
    backbone: str, stem: str, batch: int, steps: int, warmup: int, rows: int, device: str
) -> float:
    pl.seed_everything(0, verbose=False)
    dm = FER2013DataModule(batch_size=batch, num_workers=2, augment=True, synthetic_rows=rows)
    dm.prepare_data()
    dm.setup("fit")
    model = ClassificationModule(backbone=backbone, stem=stem).net.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    done, t0 = 0, 0.0
    for i, (x, y) in enumerate(dm.train_dataloader()):
        if i == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        if i == warmup + steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        done += i >= warmup
    if device == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - t0)


def bench_throughput(
    backbone: str, stem: str, batch: int, steps: int, warmup: int, device: str
) -> dict:
    rows = int((steps + warmup + 2) * batch / 0.8) + 10
    args = [
        "--config",
        "fer2013-resnet50",
        f"--model.backbone={backbone}",
        f"--model.stem={stem}",
        f"--data.batch_size={batch}",
        f"--data.synthetic_rows={rows}",
        "--data.num_workers=2",
        "--trainer.max_epochs=1",
        f"--trainer.limit_train_batches={steps + warmup}",
        "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false",
        f"--trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        "--test_after_fit=false",
        "--wandb_mode=offline",
        "--output_dir=runs/bench",
    ]
    lit = _litlab_fit(args, warmup) * batch
    raw = _raw_loop(backbone, stem, batch, steps, warmup, rows, device) * batch
    return {
        "device": device,
        "model": f"{backbone} ({stem} stem), 48x48x1",
        "batch": batch,
        "timed_steps": steps,
        "litlab_images_per_s": round(lit, 1),
        "raw_pytorch_images_per_s": round(raw, 1),
        "litlab_over_raw": round(lit / raw, 3),
    }


def bench_stem_cost(batch: int, steps: int) -> dict:
    """Training images/s of the FER2013 ResNet-50 with the paper's modified 48-px stem and with
    the standard stem (the plain loop of :func:`_raw_loop`, one warm-up step). ``make
    train-fer2013`` on the embedded CSV fits the standard stem for this."""
    rows = int((steps + 3) * batch / 0.8) + 10
    out: dict = {"batch": batch}
    for stem in ("fer48", "standard"):
        rate = _raw_loop("resnet50", stem, batch, steps, 1, rows, "cpu") * batch
        out[f"{stem}_images_per_s"] = round(rate, 1)
    out["standard_over_fer48"] = round(out["standard_images_per_s"] / out["fer48_images_per_s"], 1)
    return out


def bench_liver_precision(steps: int, batch: int) -> dict:
    """DeepLabV3Plus(resnet34) at 224x224 on the GPU: fp32 vs bf16 autocast training images/s."""
    from litlab.lightning_modules.segmentation import SegmentationModule

    model = SegmentationModule().cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(batch, 1, 224, 224, device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch, 224, 224), device="cuda")
    out = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        for i in range(steps + 5):
            if i == 5:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        out[f"{name}_images_per_s"] = round(steps * batch / (time.perf_counter() - t0), 1)
    out["bf16_over_fp32"] = round(out["bf16_images_per_s"] / out["fp32_images_per_s"], 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smaller CSV and fewer steps (a smoke run)")
    p.add_argument(
        "--backbone", default="resnet50", help="classifier for the throughput comparison"
    )
    p.add_argument("--stem", default="fer48")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("WANDB_SILENT", "true")
    rows = 3_000 if args.quick else FULL_ROWS
    steps = args.steps or (5 if args.quick else 10)
    results: dict = {"torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    print(f"== FER2013 CSV parsing ({rows} rows)", flush=True)
    results["csv"] = bench_csv(rows, repeat=1 if args.quick else 3)
    print(json.dumps(results["csv"], indent=2), flush=True)
    print("== augmentation images/s per core: per-sample vs batched", flush=True)
    results["augmentation"] = augmentation_rate(batches=5 if args.quick else 20)
    print(json.dumps(results["augmentation"], indent=2), flush=True)
    print("== FER2013 preset (resnet18, standard stem), one CPU epoch: augment_on=sample vs batch")
    results["fer2013_epoch"] = fer2013_epoch_seconds(
        300 if args.quick else 1500, ["--model.backbone=resnet18", "--model.stem=standard"]
    )
    print(json.dumps(results["fer2013_epoch"], indent=2), flush=True)
    print("== FER2013 ResNet-50 training images/s on CPU: modified 48-px stem vs standard stem")
    results["stem_cost"] = bench_stem_cost(*((16, 1) if args.quick else (64, 3)))
    print(json.dumps(results["stem_cost"], indent=2), flush=True)
    print("== command latency (s, fresh process)", flush=True)
    runs = report_runs(Path("runs/bench/report-runs"))
    report = ["fer2013", "--runs", str(runs), "--out", str(runs / "report"), "--no-data-check"]
    results["latency"] = command_latency(report, repeat=1 if args.quick else 5)
    print(json.dumps(results["latency"], indent=2), flush=True)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results["throughput"] = []
    for device in devices:
        backbone = "resnet18" if (device == "cpu" and args.quick) else args.backbone
        print(
            f"== training throughput on {device}: litlab fit vs raw PyTorch ({backbone})",
            flush=True,
        )
        row = bench_throughput(
            backbone, args.stem, args.batch, steps if device == "cpu" else 50, 3, device
        )
        results["throughput"].append(row)
        print(json.dumps(row, indent=2), flush=True)
    if torch.cuda.is_available():
        print("== liver DeepLabV3Plus 224x224, fp32 vs bf16", flush=True)
        results["liver_precision"] = bench_liver_precision(steps=30, batch=16)
        print(json.dumps(results["liver_precision"], indent=2), flush=True)
    out = Path("runs/bench") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
