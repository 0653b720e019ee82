"""The autism report's example figure: raw, mask and segmented test images side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from litlab.datamodules.face_masks import mask_preview_grid
from litlab.datamodules.folders import decode_image, resize_image


def example_grid(data: dict[str, Any], n: int = 6) -> np.ndarray | None:
    """A raw / mask / segmented grid of the first ``n`` test images of a segmented run.

    Args:
        data: The run's data description (``test_confusion.json``'s ``data``): segmented and
            source test paths, the masks folder, the data root and the image size.
        n: Test images shown, one per row.

    Returns:
        An RGB uint8 grid ``(rows, cols, 3)``, or ``None`` when the run is not a segmented one.
    """
    seg_paths = [Path(p) for p in data.get("test_paths", [])][:n]
    raw_paths = [Path(p) for p in data.get("source_test_paths", [])][:n]
    masks_root = data.get("masks_root")
    if not seg_paths or not masks_root or len(raw_paths) != len(seg_paths):
        return None
    data_root = Path(data["data_root"])
    size = int(data.get("image_size", 224))
    raw, masks, seg = [], [], []
    for raw_path, seg_path in zip(raw_paths, seg_paths, strict=True):
        raw.append(resize_image(decode_image(raw_path, "rgb"), (size, size)))
        mask_path = Path(masks_root) / seg_path.relative_to(data_root)
        masks.append(decode_image(mask_path, "gray") > 0)
        seg.append(decode_image(seg_path, "rgb"))
    return mask_preview_grid(np.stack(raw), np.stack(masks), np.stack(seg), max_rows=n)
