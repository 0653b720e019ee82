"""``litlab report faceexpr``: the triplet paper's Table 4 beside our kNN-evaluated embeddings.

Each optimiser preset's newest run gives the kNN accuracy and macro precision / recall / F1 of the
held-out images voted by their nearest training images (never themselves: ``test/self_matches``
counts the queries that had a byte-identical copy in the gallery, which was left out). Accuracy
gets a Wilson interval from the held-out size; the run's data is rebuilt from its config to count
held-out images that are pixel-identical to, or near copies of, training images.
"""

from __future__ import annotations

from pathlib import Path

from litlab.report.data_facts import run_data_facts
from litlab.report.document import Report
from litlab.report.papers import FACEEXPR, FACEEXPR_ERRATUM
from litlab.report.rows import leakage_lines, missing, proportion_row, run_notes, test_size
from litlab.report.run_folders import latest_run

PRESETS = {
    "faceexpr-facenet": "FaceNet-style CNN, triplet loss, Adam",
    "faceexpr-facenet-sgd": "FaceNet-style CNN, triplet loss, SGD",
    "faceexpr-facenet-rmsprop": "FaceNet-style CNN, triplet loss, RMSprop",
}


def build(runs_root: Path, check_data: bool = True) -> Report:
    """The triplet-embedding report from the newest run of each optimiser preset."""
    report = Report.on_paper(
        "faceexpr",
        "Facial expressions by triplet embeddings: paper and ours",
        FACEEXPR,
        "ours: the given train/ and validation/ folders (or a seeded held-out part of a "
        "class-folder root); each held-out image is classified by a kNN vote of the "
        "un-augmented training images' embeddings, never by its own copy",
    )
    for preset, setting in PRESETS.items():
        paper = FACEEXPR.results[preset]
        run = latest_run(runs_root, preset)
        if run is None:
            missing(report, runs_root, preset)
            report.rows.append(proportion_row(setting, "accuracy", paper, "knn_acc", None, None))
            continue
        facts = run_data_facts(run.config, run_dir=run.path) if check_data else {}
        n = test_size(facts)
        report.rows.append(
            proportion_row(
                setting, "kNN accuracy, held-out", paper, "knn_acc", run.test.get("test/knn_acc"), n
            )  # fmt: skip
        )
        for key in ("precision", "recall", "f1"):
            row = proportion_row(setting, f"{key} (macro)", None, key,
                                 run.test.get(f"test/{key}"), n)  # fmt: skip
            row.paper, row.ours_ci = 1.0, None  # Table 4: 100 % for every optimiser
            report.rows.append(row)
        if facts:
            report.leakage += leakage_lines(preset, facts)
        matches = run.test.get("test/self_matches")
        if matches is not None:
            report.leakage.append(
                f"{preset}: held-out queries with a byte-identical training image, left out of "
                f"their own vote: {int(matches):,}"
            )
        run_notes(report, run)
    report.notes.append(FACEEXPR_ERRATUM)
    report.notes.append(
        "Paper: precision, recall and F1 'reached 100 %' for every optimiser while accuracy "
        "stayed below 100 %, which a confusion matrix cannot produce."
    )
    return report
