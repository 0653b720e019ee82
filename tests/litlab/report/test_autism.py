"""``litlab report autism``: Table 1 beside the paper, the arms' difference, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from litlab.callbacks.run_files import CONFUSION_FILE

from litlab import report


def _run(folder: Path, matrix: list[list[int]], data: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    payload = {"classes": ["autistic", "non_autistic"], "matrix": matrix, "data": data or {}}
    (folder / CONFUSION_FILE).write_text(json.dumps(payload))
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
    (bad / CONFUSION_FILE).write_text(
        json.dumps({"classes": ["a", "b"], "matrix": [[1, 0], [0, 1]]})
    )
    assert report.main(["autism", "--raw", str(bad), "--runs", str(tmp_path)]) == 2
    assert "autistic" in capsys.readouterr().err
