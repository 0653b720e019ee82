"""``litlab predict``: a trained model on new inputs, written to ``<run>/predictions/``.

``litlab predict --config fer2013-resnet50 --ckpt_path runs/.../best.ckpt --predict_from faces/``

``--predict_from`` is a folder of images (any depth), an image, a FER2013-format CSV, or for the
liver presets NIfTI volume(s) and slice PNGs; without it the preset's test split is predicted.
The DataModule reads and preprocesses the inputs as its evaluation data
(:meth:`litlab.datamodules.base.LitlabDataModule.predict_items`), Lightning runs the batches on
the chosen accelerator, and :class:`litlab.callbacks.prediction_writer.PredictionWriter` writes
what the model predicts. This module holds the command's option and its steps around
``Trainer.predict``; :mod:`litlab.cli` calls them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningArgumentParser

from litlab.callbacks.prediction_writer import CSV_FILE, PredictionWriter
from litlab.datamodules.base import LitlabDataModule

log = logging.getLogger(__name__)

PREDICTIONS_DIR = "predictions"


def add_predict_arguments(parser: LightningArgumentParser) -> None:
    """``--predict_from`` on the ``predict`` subcommand's parser."""
    parser.add_argument(
        "--predict_from",
        type=str | None,
        default=None,
        help="What to predict: a folder of images (any depth), an image, a FER2013-format CSV "
        "(pixels required; emotion, Usage optional), NIfTI volume(s) or liver slice PNGs. "
        "Default: the preset's test split. Outputs go to <run>/predictions/",
    )


def prediction_writer(run_dir: Path) -> PredictionWriter:
    """The writer of ``<run>/predictions/``."""
    return PredictionWriter(Path(run_dir) / PREDICTIONS_DIR)


def before_predict(
    datamodule: pl.LightningDataModule | None,
    predict_from: str | None,
    ckpt_path: str | None,
    fn_kwargs: dict[str, Any],
) -> None:
    """Point the DataModule at ``predict_from`` and keep predictions out of memory.

    Args:
        datamodule: The run's DataModule.
        predict_from: ``--predict_from``, or ``None`` for the test split.
        ckpt_path: ``--ckpt_path`` (a warning when there is none: the weights are untrained).
        fn_kwargs: The arguments ``Trainer.predict`` will get (``return_predictions`` is set to
            ``False`` unless given: the writer has them on disk).

    Raises:
        FileNotFoundError: ``predict_from`` does not exist.
        ValueError: The DataModule cannot read new inputs.
    """
    if not ckpt_path:
        log.warning("no --ckpt_path: predicting with the model's initial, untrained weights")
    if fn_kwargs.get("return_predictions") is None:
        fn_kwargs["return_predictions"] = False
    if not predict_from:
        return
    path = Path(predict_from).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"--predict_from {path} does not exist; pass a folder of images, an image, a "
            "FER2013-format CSV, or NIfTI volume(s) / slice PNGs for the liver presets"
        )
    if not isinstance(datamodule, LitlabDataModule):
        raise ValueError(
            f"--predict_from needs a litlab DataModule to read and preprocess the inputs; "
            f"{type(datamodule).__name__} is not one"
        )
    datamodule.predict_from(path)


def summary_lines(trainer: pl.Trainer) -> list[str]:
    """What the predict run wrote, for the console."""
    writer = next(c for c in trainer.callbacks if isinstance(c, PredictionWriter))
    lines = [f"\npredictions:     {writer.output_dir / CSV_FILE} ({writer.written} inputs)"]
    for extra in sorted(writer.output_dir.glob("*.npy")):
        lines.append(f"embeddings:      {extra}")
    masks = writer.output_dir / "masks"
    if masks.is_dir():
        lines.append(f"masks:           {masks}")
    return [*lines, f"run folder:      {trainer.default_root_dir}"]
