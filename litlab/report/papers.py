"""What each paper reports, as published: the numbers its report sets ours beside, and where from.

Values are fractions. ``n`` is the test set size the paper's figures imply (``None`` where it
cannot be told), used for the papers' own 95 % intervals. The autism paper's Table 1 lives in
:mod:`litlab.report.autism`, which predates this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PaperResult:
    """One published configuration.

    Attributes:
        label: How the paper names it.
        metrics: ``{metric key: fraction}`` in our log-key names (``acc``, ``precision``, ...).
        n: Test images behind the figures (``None``: not stated or not derivable).
        where: Table or figure the numbers come from.
    """

    label: str
    metrics: dict[str, float]
    n: int | None
    where: str


@dataclass(frozen=True)
class Paper:
    """A paper: its file under ``shared/papers``, its split as written, and its results."""

    file: str
    title: str
    protocol: str
    results: dict[str, PaperResult] = field(default_factory=dict)


FER2013 = Paper(
    file="003_1f2b23c05d5edf41.txt",
    title="FER2013 facial expressions with ResNet-50, augmentation vs none (in Indonesian)",
    protocol=(
        "FER2013 CSV: Usage Training / PublicTest / PrivateTest = 28,709 / 3,589 / 3,589 images "
        "as train / validation / test (Sec. 3.2.3); Sec. 3.2.4 also speaks of an 80/10/10 "
        "scikit-learn split. The test confusion matrix (Fig. 4.10) sums to 3,589 images, the "
        "PrivateTest size, with 2,179 correct (60.71 %)."
    ),
    results={
        "fer2013-resnet50": PaperResult(
            "ResNet-50 modified, augmented, SGD lr 0.01, 60 epochs (best)",
            {"train_acc": 0.6428, "val_acc": 0.6049, "acc": 0.6071},
            3589,
            "Sec. 4.2 and Fig. 4.10",
        ),
    },
)

CKPLUS = Paper(
    file="001_91b2125509572685.txt",
    title="Facial expression recognition with ResNet-50 transfer learning on CK+",
    protocol=(
        "CK+48 (981 images, 7 classes), one random 80/20 image split (Sec. II); no validation "
        "part is mentioned. 99.49 % and 95.41 % are 195 and 187 of 196 test images (20 % of 981)."
    ),
    results={
        "ckplus-resnet50": PaperResult(
            "ResNet-50 transfer learning",
            {"acc": 0.9949, "precision": 0.9949, "recall": 0.9971, "f1": 0.9960},
            196,
            "Table II",
        ),
        "ckplus-resnet50-scratch": PaperResult(
            "ResNet-50 without transfer learning",
            {"acc": 0.9541, "precision": 0.96, "recall": 0.9141, "f1": 0.9311},
            196,
            "Table II",
        ),
    },
)

FACEEXPR = Paper(
    file="002_8f6ff86995036aa3.txt",
    title="FaceNet CNN with triplet loss for facial expression recognition",
    protocol=(
        "Kaggle face-expression-recognition-dataset, train/ and validation/ folders (28,866 / "
        "7,066 images by Table 1); training images doubled by rotation, crop and x/y shift; "
        "scored on 'the 20 % testing data' (Fig. 6), i.e. the validation folder. How a class is "
        "read from an embedding is not said."
    ),
    results={
        "faceexpr-facenet": PaperResult(
            "FaceNet, Adam (best)", {"knn_acc": 0.9996}, 7066, "Table 4"
        ),
        "faceexpr-facenet-sgd": PaperResult("FaceNet, SGD", {"knn_acc": 0.9991}, 7066, "Table 4"),
        "faceexpr-facenet-rmsprop": PaperResult(
            "FaceNet, RMSprop", {"knn_acc": 0.9992}, 7066, "Table 4"
        ),
    },
)

LIVER = Paper(
    file="004_20f99cff33a2387d.txt",
    title="Liver CT segmentation, DeepLabV3Plus, random search and Bayesian optimisation",
    protocol=(
        "Kaggle liver CT images divided 70 % / 16 % / 14 % (training / validation / 'follow-up "
        "training'); nothing says the division keeps a patient's slices together. The reported "
        "mIoU and PA are validation values from the training log (its appendix), pooled over "
        "slices; no per-volume score is reported."
    ),
    results={
        "liver-deeplabv3plus": PaperResult(
            "DeepLabV3Plus (proposed)",
            {"miou": 0.965, "pixel_acc": 0.929, "loss": 0.011},
            None,
            "Table 1",
        ),
        "liver-resnet": PaperResult(
            "ResNet", {"miou": 0.060, "pixel_acc": 0.117, "loss": 0.921}, None, "Table 1"
        ),
    },
)

LIVER_ERRATUM = (
    "Erratum: with 2 classes every wrong pixel is a false positive of one class and a false "
    "negative of the other, so with E wrong pixels IoU_c = TP_c / (TP_c + E) and PA = "
    "(TP_0 + TP_1) / (TP_0 + TP_1 + E): each class IoU, and so the mean IoU, is at most PA. The "
    "paper's mIoU 0.965 > PA 0.929 cannot both be right. Ours are tested to keep mIoU <= PA."
)

FACEEXPR_ERRATUM = (
    "99.93 % on a FER2013-derived set is not credible: people agree on about 65 % of FER2013 "
    "labels, and published models reach 73-76 %. A figure this high suggests the evaluation saw "
    "its training images; ours are kNN votes of held-out images against the training gallery, "
    "a query never its own neighbour, with train/held-out duplicates counted below."
)
