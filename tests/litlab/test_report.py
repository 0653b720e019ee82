"""``litlab report autism``: intervals against hand/sklearn computations, the table, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from litlab import report


def test_wilson_interval_matches_the_closed_form() -> None:
    lo, hi = report.wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert report.wilson_interval(0, 20)[0] == 0.0 and report.wilson_interval(20, 20)[1] == 1.0
    assert all(np.isnan(report.wilson_interval(0, 0)))
    # 300 test images at 84 %: about +-4 points, as the issue says
    lo, hi = report.wilson_interval(252, 300)
    assert 0.035 < (hi - lo) / 2 < 0.045


def test_binary_metrics_match_sklearn_for_the_positive_class() -> None:
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    matrix = np.zeros((2, 2), int)
    np.add.at(matrix, (y, p), 1)
    got = report.binary_metrics(*report.binary_counts(matrix, positive=0))
    assert got["acc"] == pytest.approx(accuracy_score(y, p))
    assert got["recall"] == pytest.approx(recall_score(y, p, pos_label=0))
    assert got["precision"] == pytest.approx(precision_score(y, p, pos_label=0))
    assert got["f1"] == pytest.approx(f1_score(y, p, pos_label=0))


def test_intervals_contain_the_estimate_and_shrink_with_more_images() -> None:
    small = report.metric_intervals(np.array([[40, 10], [8, 42]]), 0, n_boot=1000)
    large = report.metric_intervals(np.array([[400, 100], [80, 420]]), 0, n_boot=1000)
    for name in report.METRICS:
        value, lo, hi = small[name]
        assert lo <= value <= hi
        assert large[name][2] - large[name][1] < hi - lo
    assert small["acc"][0] == pytest.approx(0.82)


def _run(folder: Path, matrix: list[list[int]], data: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    payload = {"classes": ["autistic", "non_autistic"], "matrix": matrix, "data": data or {}}
    (folder / report.CONFUSION_FILE).write_text(json.dumps(payload))
    return folder


def test_report_prints_table_one_beside_the_paper(tmp_path: Path, capsys) -> None:
    dup = {"exact": 2, "near": 5, "test": 100}
    _run(
        tmp_path / "runs/autism-resnet50/20240101-000000", [[40, 10], [8, 42]], {"duplicates": dup}
    )
    _run(tmp_path / "runs/autism-seg-resnet50/20240101-000000", [[45, 5], [9, 41]])
    code = report.main(["autism", "--runs", str(tmp_path / "runs"), "--bootstrap", "500"])
    out = capsys.readouterr().out
    assert code == 0
    for text in ("83.7%", "82.4%", "85.9%", "90.0%", "87.0%", "82.0% [", "86.0% ["):
        assert text in out, text
    assert "segmented - raw accuracy: +4.0 points" in out
    # independent bootstraps: the difference of two n=100 accuracies is uncertain by ~+-11 points
    line = next(x for x in out.splitlines() if x.startswith("segmented - raw"))
    lo, hi = (float(v) for v in line.split("interval ")[1].split(";")[0].split(" to "))
    assert lo < 0 < 4 < hi and 15 < hi - lo < 30
    assert "2 of 100 test images have an identical training image" in out
    assert "not a screening or diagnostic tool" in out
    assert (tmp_path / "runs/autism-report/table.txt").read_text().strip() in out


def test_report_errors_name_the_fix(tmp_path: Path, capsys) -> None:
    assert report.main(["autism", "--runs", str(tmp_path)]) == 2
    assert "litlab fit --config autism-resnet50" in capsys.readouterr().err
    bad = _run(tmp_path / "other", [[1, 0], [0, 1]])
    (bad / report.CONFUSION_FILE).write_text(
        json.dumps({"classes": ["a", "b"], "matrix": [[1, 0], [0, 1]]})
    )
    assert report.main(["autism", "--raw", str(bad), "--runs", str(tmp_path)]) == 2
    assert "autistic" in capsys.readouterr().err
