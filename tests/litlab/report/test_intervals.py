"""Report intervals: Wilson and bootstrap against closed forms and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from litlab.report import intervals


def test_wilson_interval_matches_the_closed_form() -> None:
    lo, hi = intervals.wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert (
        intervals.wilson_interval(0, 20)[0] == 0.0 and intervals.wilson_interval(20, 20)[1] == 1.0
    )
    assert all(np.isnan(intervals.wilson_interval(0, 0)))
    # 300 test images at 84 %: about +-4 points, as the issue says
    lo, hi = intervals.wilson_interval(252, 300)
    assert 0.035 < (hi - lo) / 2 < 0.045


def test_binary_metrics_match_sklearn_for_the_positive_class() -> None:
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    matrix = np.zeros((2, 2), int)
    np.add.at(matrix, (y, p), 1)
    got = intervals.binary_metrics(*intervals.binary_counts(matrix, positive=0))
    assert got["acc"] == pytest.approx(accuracy_score(y, p))
    assert got["recall"] == pytest.approx(recall_score(y, p, pos_label=0))
    assert got["precision"] == pytest.approx(precision_score(y, p, pos_label=0))
    assert got["f1"] == pytest.approx(f1_score(y, p, pos_label=0))


def test_intervals_contain_the_estimate_and_shrink_with_more_images() -> None:
    small = intervals.metric_intervals(np.array([[40, 10], [8, 42]]), 0, n_boot=1000)
    large = intervals.metric_intervals(np.array([[400, 100], [80, 420]]), 0, n_boot=1000)
    for name in intervals.METRICS:
        value, lo, hi = small[name]
        assert lo <= value <= hi
        assert large[name][2] - large[name][1] < hi - lo
    assert small["acc"][0] == pytest.approx(0.82)
