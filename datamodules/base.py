"""The base of every litlab DataModule: loader settings as hyperparameters and the setup skeleton.

A subclass says where its data is (:meth:`LitlabDataModule.data_path`), how to load it
(:meth:`~LitlabDataModule.load`) and how to split it (:meth:`~LitlabDataModule.split`); the base
saves every constructor argument with ``save_hyperparameters``, builds the three splits once in
``setup`` (every later call, on every rank, keeps them) and serves them with the loader settings.
A subclass whose data is uint8 images with class labels keeps the default
:meth:`~LitlabDataModule.datasets`: :class:`~litlab.datamodules.arrays.ArrayDataset` with the
shared classification transforms.

The model<->data contract is read from three properties, valid right after ``__init__`` (the CLI
links them to the model): ``num_classes``, ``in_chans`` and ``class_names``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from litlab.datamodules.arrays import ArrayDataset, ImageArrays
from litlab.datamodules.augment import classification_transforms
from litlab.datamodules.batch_augment import BatchPaperAugmentation
from litlab.datamodules.folders import resize_image
from litlab.datamodules.predict_inputs import DecodedInputs, PredictItems, read_images_or_csv
from torch.utils.data import DataLoader, Dataset, Sampler

from litlab.checks import check_at_least

#: ``(train, val, test)`` index arrays; ``val`` may be the same array as ``test``.
Parts = tuple[np.ndarray, np.ndarray, np.ndarray]


def check_choice(option: str, value: object, choices: Sequence[str]) -> None:
    """Refuse a constructor option's value outside ``choices``.

    Args:
        option: The option's name, as ``--data.<option>`` sets it.
        value: The value given.
        choices: The values the option takes.

    Raises:
        ValueError: ``value`` is not one of ``choices``; the message names the option, the
            value, the choices and the flag that sets them.
    """
    if value not in choices:
        *rest, last = (repr(choice) for choice in choices)
        named = f"{', '.join(rest)} or {last}" if rest else last
        raise ValueError(
            f"{option} must be {named}, got {value!r} (--data.{option}={'|'.join(choices)})"
        )


def _dataset_not_needed() -> None:
    """``prepare_data`` while predicting on new inputs: the dataset is not read."""


class LitlabDataModule(pl.LightningDataModule):
    """Loader settings, the ``setup`` skeleton and the loaders every litlab DataModule shares.

    Subclasses take these four settings through ``**loader`` (passing a default of their own
    where the paper's differs) and read every argument back from ``self.hparams``. A dataset
    whose classes or channels are fixed states them in :attr:`CLASS_NAMES` and :attr:`IN_CHANS`;
    one whose options decide them overrides the properties.

    Args:
        batch_size: Images per batch per process.
        num_workers: DataLoader worker processes (0 loads in the main process).
        pin_memory: Pin host memory for faster host-to-GPU copies; on by default when CUDA exists.
        seed: Seed of the splits (the embedded datasets have seeds of their own).
    """

    #: The dataset's class names in label order, when they are fixed.
    CLASS_NAMES: tuple[str, ...] = ()
    #: The image channels, when they are fixed.
    IN_CHANS: int = 0
    #: Side of the model input, for a dataset without an ``image_size`` option.
    INPUT_SIZE: int = 0

    def __init__(
        self,
        batch_size: int = 32,
        num_workers: int = 2,
        pin_memory: bool | None = None,
        seed: int = 42,
    ) -> None:
        super().__init__()
        check_at_least("batch_size", batch_size, 1)
        check_at_least("num_workers", num_workers, 0)
        # Records this constructor's arguments and those of every subclass constructor above it.
        self.save_hyperparameters()
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.predict_path: Path | None = None  # set by predict_from
        self.predict_set: PredictItems | None = None

    @property
    def batch_size(self) -> int:
        """Images per batch per process."""
        return int(self.hparams.batch_size)

    @property
    def num_workers(self) -> int:
        """DataLoader worker processes."""
        return int(self.hparams.num_workers)

    @property
    def pin_memory(self) -> bool:
        """Whether loaders pin host memory (``None`` resolves to whether CUDA exists)."""
        pin = self.hparams.pin_memory
        return torch.cuda.is_available() if pin is None else bool(pin)

    @property
    def seed(self) -> int:
        """Seed of the splits."""
        return int(self.hparams.seed)

    @property
    def class_names(self) -> list[str]:
        """Class names in label order (the CLI links them to the model's ``class_names``)."""
        if not self.CLASS_NAMES:
            raise AttributeError(f"{type(self).__name__} does not name its classes")
        return list(self.CLASS_NAMES)

    @property
    def num_classes(self) -> int:
        """Number of classes: ``len(class_names)``."""
        return len(self.class_names)

    @property
    def in_chans(self) -> int:
        """Channels of the images served (the CLI links them to the model's input channels)."""
        if not self.IN_CHANS:
            raise AttributeError(f"{type(self).__name__} does not state its image channels")
        return self.IN_CHANS

    def data_path(self) -> Path:
        """The dataset this module reads: the user's path, or the embedded one (made on first use)."""
        raise NotImplementedError(f"{type(self).__name__} does not say where its data is")

    def prepare_data(self) -> None:
        """Generate the embedded dataset once, before any process reads it (local rank 0)."""
        self.data_path()

    def load(self) -> Any:
        """Read the whole dataset (from caches where it can); called once by :meth:`setup`."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to load its data")

    def split(self, data: Any) -> Any:
        """The train / val / test parts of what :meth:`load` returned (usually :data:`Parts`)."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to split its data")

    def transforms(self) -> tuple[Any, Any]:
        """``(train, eval)`` transforms of the default :meth:`datasets`.

        With ``augment_on="batch"`` the loaders serve uint8 and :meth:`on_after_batch_transfer`
        augments and normalises whole batches on their device.
        """
        if self.hparams.get("augment_on", "sample") == "batch":
            return None, None
        return classification_transforms(self.in_chans, bool(self.hparams.get("augment", False)))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """``augment_on="batch"``: the paper's augmentation (training) and ``[-1, 1]`` scaling
        of a uint8 ``(B, C, H, W)`` batch on its device; other batches pass unchanged."""
        if self.hparams.get("augment_on", "sample") != "batch":
            return batch
        images, *rest = batch
        if images.dtype != torch.uint8:
            return batch
        trainer = getattr(self, "trainer", None)
        if self.hparams.get("augment", False) and trainer is not None and trainer.training:
            images, _ = BatchPaperAugmentation()(images)
        images = images.float().div_(127.5).sub_(1.0)  # = ToDtype(scale=True), Normalize(0.5, 0.5)
        return type(batch)([images, *rest]) if isinstance(batch, tuple | list) else batch

    def datasets(self, data: ImageArrays, parts: Parts) -> tuple[Dataset, Dataset, Dataset]:
        """The train / val / test datasets: uint8 images and labels with the classification
        transforms (augmentation on training images only)."""
        train_tf, eval_tf = self.transforms()
        tfs = (train_tf, eval_tf, eval_tf)
        out = [
            ArrayDataset(data.images[i], data.labels[i], tf)
            for i, tf in zip(parts, tfs, strict=True)
        ]
        return out[0], out[1], out[2]

    def setup(self, stage: str | None = None) -> None:
        """Load, split and wrap the data once; later calls (any stage) keep the same splits.

        Predicting on :meth:`predict_from` inputs reads only those, never the dataset.
        """
        if stage == "predict" and self.predict_path is not None:
            if self.predict_set is None:
                self.predict_set = self.predict_items(self.predict_path)
            return
        if self.train_set is not None:
            return
        data = self.load()
        self.train_set, self.val_set, self.test_set = self.datasets(data, self.split(data))

    def _loader(
        self,
        dataset: Dataset | None,
        shuffle: bool,
        sampler: Sampler | None = None,
        batch_sampler: Sampler | None = None,
        drop_last: bool = False,
    ) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not built this split yet")
        if batch_sampler is not None:
            return DataLoader(
                dataset,
                batch_sampler=batch_sampler,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                persistent_workers=self.num_workers > 0,
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=drop_last,
        )

    def train_dataloader(self) -> DataLoader:
        # A last training batch of one image fails in any layer that normalises over the batch
        # alone (DeepLabV3+'s image-pooling branch); that image is drawn again in the next
        # epoch's shuffle, so such a batch is dropped rather than crashing the fit. Under DDP
        # each process draws ceil(N / world_size) images (the sampler pads), so that count decides.
        world = self.trainer.world_size if self.trainer is not None else 1
        per_process = -(-len(self.train_set) // world) if self.train_set is not None else 0
        lone_last = per_process % self.batch_size == 1
        return self._loader(self.train_set, shuffle=True, drop_last=lone_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The :meth:`predict_from` inputs, else the test split; batches ``(inputs, indices)``."""
        if self.predict_path is None and self.predict_set is None:
            self.predict_set = self.test_items()
        return self._loader(self.predict_set, shuffle=False)

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` of the model input: ``image_size``, else :attr:`INPUT_SIZE`."""
        size = self.hparams.get("image_size") or self.INPUT_SIZE
        if not size:
            raise AttributeError(f"{type(self).__name__} does not state its input size")
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    @property
    def input_color(self) -> str:
        """How images are decoded for this module: ``"rgb"`` for 3 channels, else ``"gray"``."""
        return "rgb" if self.in_chans == 3 else "gray"

    def preprocessing(self) -> dict[str, Any]:
        """How a raw image becomes the model input, in words and numbers (export metadata)."""
        h, w = self.input_size
        channels = self.in_chans
        return {
            "color": self.input_color,
            "resize": [h, w],
            "interpolation": "OpenCV INTER_AREA to shrink, INTER_LINEAR to enlarge",
            "scale": "x / 255",
            "normalize": {"mean": [0.5] * channels, "std": [0.5] * channels},
            "value_range": [-1.0, 1.0],
            "layout": "NCHW float32",
        }

    def predict_from(self, path: str | Path | None) -> None:
        """Predict on ``path`` instead of the test split (``litlab predict --predict_from``).

        New inputs need nothing of the dataset, so ``prepare_data`` (which generates, parses or
        decodes it) is skipped too.
        """
        self.predict_path = Path(path).expanduser() if path else None
        self.predict_set = None
        if self.predict_path is not None:
            self.prepare_data = _dataset_not_needed  # type: ignore[method-assign]
        else:
            self.__dict__.pop("prepare_data", None)

    def predict_items(self, path: Path) -> PredictItems:
        """The inputs at ``path`` (a folder of images at any depth, an image or a FER2013-format
        CSV), preprocessed as the evaluation split is. Subclasses with other inputs override."""
        decoded = read_images_or_csv(path, self.input_color, self.hparams.get("skip_bad_rows"))
        return self.items_from(decoded)

    def items_from(self, decoded: DecodedInputs) -> PredictItems:
        """Decoded images -> :meth:`predict_arrays` -> the evaluation transform."""
        sizes = np.asarray([im.shape[:2] for im in decoded.images], np.int64).reshape(-1, 2)
        arrays = self.predict_arrays(decoded.images)
        inputs = ArrayDataset(arrays, np.zeros(len(arrays), np.int64), self.transforms()[1])
        return PredictItems(inputs, decoded.sources, decoded.names, decoded.labels, sizes)

    def predict_arrays(self, images: list[np.ndarray]) -> np.ndarray:
        """uint8 images of any size -> the uint8 array the evaluation transform takes, prepared
        as the training images are (here: resized to :attr:`input_size`)."""
        return np.stack([resize_image(image, self.input_size) for image in images])

    def test_items(self) -> PredictItems:
        """The test split as prediction inputs (``litlab predict`` without ``--predict_from``)."""
        test = self.test_set
        if test is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not built the test split yet")
        n = len(test)  # type: ignore[arg-type]
        labels = getattr(test, "labels", None)
        sources = [f"test split item {i}" for i in range(n)]
        return PredictItems(test, sources, [f"test_{i:06d}" for i in range(n)], labels)
