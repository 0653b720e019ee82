"""FaceMaskDataModule: image/mask pairs of the autism layout for the face segmenter."""

from __future__ import annotations

from pathlib import Path

import torch
from litlab.datamodules.face_segmentation import FaceMaskDataModule
from litlab.datamodules.synthetic.autism import write_autism_folders


def test_face_mask_datamodule_serves_image_mask_pairs(tmp_path: Path) -> None:
    dm = FaceMaskDataModule(
        root=str(write_autism_folders(tmp_path / "f", {"train": 3, "valid": 1, "test": 1})),
        image_size=32,
        grabcut_size=32,
        batch_size=2,
        num_workers=0,
    )
    dm.prepare_data()
    dm.setup("fit")
    x, m = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 3, 32, 32) and m.shape == (2, 32, 32) and m.dtype == torch.int64
    assert set(m.unique().tolist()) <= {0, 1} and len(dm.val_set) == 2
    assert dm.preview_path is not None and dm.preview_path.is_file()
    smoke = FaceMaskDataModule(
        root=dm.hparams.root, image_size=32, grabcut_size=32, limit_per_class=1
    )
    smoke.setup("fit")
    assert (len(smoke.train_set), len(smoke.val_set)) == (2, 2)
