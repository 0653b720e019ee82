"""Each Make target's default run learns on its embedded dataset, clearly above chance.

A test runs the Make target itself (``make <target> RUNS=<tmp>``, on the embedded data generated
afresh in a temporary cache), then reads what ``python -m litlab.expect`` reads: the newest run's
``result.json``, or the study's best trial and ``trials.csv``. Each bar comes from a measured run
of the same target on a 2-core machine (stated beside it), less the test split's sampling spread.
They take minutes each: ``make test-full`` runs them.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from litlab.expect import EXPECTATIONS, PLATEAU_DICE, SCORED
from litlab.report.run_folders import latest_run, read_run

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
#: A target past this many seconds is stopped and the test fails.
DEADLINE_S = 3600


def _make(target: str, tmp_path: Path, *variables: str) -> Path:
    """Run ``make <target>`` with its run folders under ``tmp_path/runs``; return that folder."""
    runs = tmp_path / "runs"
    env = {**os.environ, "LITLAB_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "offline"}
    venv = Path(sys.executable).parent.parent  # the venv these tests run in
    proc = subprocess.run(
        # -o: the venv counts as installed (never reinstalled from here)
        [
            "make",
            "-C",
            str(REPO),
            "-o",
            f"{venv}/.installed",
            target,
            f"RUNS={runs}",
            f"VENV={venv}",
            *variables,
        ],  # fmt: skip
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "what to look at:" in proc.stdout, proc.stdout[-2000:]
    return runs


def _test_metrics(runs: Path, preset: str) -> dict[str, float]:
    run = latest_run(runs, preset)
    assert run is not None, f"no finished {preset} run under {runs}"
    return run.test


def _above_chance(target: str, value: float, bar: float) -> None:
    chance = EXPECTATIONS[target].chance
    assert bar > chance
    assert value >= bar, f"{target}: {value:.3f} < bar {bar} (chance {chance})"
    assert value < 0.99, f"{target}: {value:.3f}: the embedded data became trivial"


#: Measured: test kNN accuracy 0.824 (``make train-faceexpr``: Adam 1e-4, batch 16, 8 epochs,
#: doubled training set; generator v3), and 0.801 in a single-threaded run. The test split
#: holds 176 faces, so one standard error is about 0.03: the bar sits five below the measurement
#: and far above chance (0.258).
FACEEXPR_KNN_BAR = 0.65


def test_train_faceexpr_learns_at_the_papers_settings(tmp_path: Path) -> None:
    runs = _make("train-faceexpr", tmp_path)
    test = _test_metrics(runs, "faceexpr-facenet")
    _above_chance("train-faceexpr", test["test/knn_acc"], FACEEXPR_KNN_BAR)


#: Measured: test liver Dice 0.816 after 5 epochs at the preset's Adam 1e-3 (128 px, 10 phantoms
#: of 16 slices; 0.703 with 8 slices). The test split is one phantom volume, so the bar sits well
#: below.
LIVER_DICE_BAR = 0.5


def test_train_liver_finds_the_liver(tmp_path: Path) -> None:
    runs = _make("train-liver", tmp_path)
    test = _test_metrics(runs, "liver-deeplabv3plus")
    _above_chance("train-liver", test["test/dice_liver"], LIVER_DICE_BAR)


#: Measured with 16 slices per phantom: test liver Dice 0.935 of the best of 8 trials (TPE, median
#: pruner), 2 of 8 trials (both pruned) on the all-background plateau. With 8 slices two fresh
#: sweeps left 2 and 5 of 8 there. Each start samples its own parameters (the sampler's seed mixes
#: in the pid and time), so the plateau count is a random draw: at the measured rate (about 1 in
#: 4) at most 3 of 8 holds about 9 times in 10, at most 2 only about 7 in 10. The test split is
#: one phantom volume: best >= 0.75.
SWEEP_DICE_BAR = 0.75
SWEEP_MAX_PLATEAU = 3


def test_sweep_liver_finds_the_liver(tmp_path: Path) -> None:
    runs = _make("sweep-liver", tmp_path, "STUDY=bar")
    study = runs / "sweeps" / "bar"
    best = read_run(study / "best-test").test
    _above_chance("sweep-liver", best["test/dice_liver"], SWEEP_DICE_BAR)
    with (study / "trials.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8, rows
    stuck = [r for r in rows if r["state"] in SCORED and float(r["value"]) < PLATEAU_DICE]
    assert len(stuck) <= SWEEP_MAX_PLATEAU, stuck


#: Measured: test accuracy raw 0.725 / segmented 0.750 on the 80 embedded test faces
#: (``make train-autism``: 80 px, 8 epochs per arm, the segmenter 2; generator v2), and raw 0.763 /
#: segmented 0.750 in a single-threaded run of the same settings. One standard error is about
#: 0.05: the bars sit near 1.5 and 3 of them below the lower figures, far above chance (0.5).
AUTISM_RAW_BAR = 0.65
AUTISM_SEG_BAR = 0.6


def test_train_autism_raw_arm_learns_the_face_geometry(tmp_path: Path) -> None:
    runs = _make("train-autism", tmp_path)
    raw = _test_metrics(runs, "autism-resnet50")
    _above_chance("train-autism", raw["test/acc"], AUTISM_RAW_BAR)
    seg = _test_metrics(runs, "autism-seg-resnet50")
    _above_chance("train-autism", seg["test/acc"], AUTISM_SEG_BAR)


#: Measured: test accuracy 0.838 on the 74 test images of the paper's random 80/20 split
#: (``make train-ckplus``: 8 epochs, Adam 1e-4, from scratch); one standard error is about
#: 0.043, and the bar sits four below.
CKPLUS_BAR = 0.65


def test_train_ckplus_learns_from_scratch(tmp_path: Path) -> None:
    runs = _make("train-ckplus", tmp_path)
    test = _test_metrics(runs, "ckplus-resnet50-scratch")
    _above_chance("train-ckplus", test["test/acc"], CKPLUS_BAR)


#: Measured: test accuracy 0.831 on the 350 PrivateTest rows of the embedded CSV
#: (``make train-fer2013``: the standard-stem arm, SGD 0.01, augmented, 10 epochs; generator v2),
#: and 0.854 after 12 epochs in a single-threaded run. One standard error is about 0.02, but
#: SGD's validation accuracy jumps by 0.1 between epochs here: the bar sits 0.13 below.
FER2013_BAR = 0.7


def test_train_fer2013_learns_the_embedded_expressions(tmp_path: Path) -> None:
    runs = _make("train-fer2013", tmp_path)
    test = _test_metrics(runs, "fer2013-resnet50-standard")
    _above_chance("train-fer2013", test["test/acc"], FER2013_BAR)
