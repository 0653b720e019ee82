"""``litlab preview``: a PNG grid of what the preprocessing does to each class.

``litlab preview --config ckplus-resnet50 [--data.root DIR] [--out preview.png] [--per_class 2]``

One row per image (``per_class`` images of every class), columns: the raw image, the
histogram-equalised image, its Canny edges, and the raw image with the detected Haar face box
(or a note when no face was found or this OpenCV build has no cascade). Settings (root,
equalisation, Canny thresholds) come from the preset's ``data.init_args`` and can be overridden
with ``--data.<name>=<value>``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from matplotlib.figure import Figure  # no pyplot: no GUI backend or global figure state

from litlab.datamodules.face_preprocessing import canny_edges, equalize, make_face_detector
from litlab.datamodules.folders import decode_image, index_class_folders
from litlab.presets import load_preset

log = logging.getLogger(__name__)

COLUMNS = ("raw", "equalised", "Canny edges", "face box")


def _parse(argv: list[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    parser = argparse.ArgumentParser(
        prog="litlab preview", description="PNG grid of a preset's preprocessing stages per class"
    )
    parser.add_argument("--config", required=True, help="preset name or YAML path")
    parser.add_argument("--out", default=None, help="output PNG (default preview-<preset>.png)")
    parser.add_argument("--per_class", type=int, default=1, help="images shown per class")
    args, rest = parser.parse_known_args(argv)
    overrides: dict[str, Any] = {}
    it = iter(rest)
    for token in it:
        if not token.startswith("--data."):
            parser.error(
                f"unknown argument {token!r}; only --data.<name>=<value> overrides are accepted"
            )
        name, sep, value = token[len("--data.") :].partition("=")
        if not sep:
            value = next(it, None)
            if value is None:
                parser.error(f"{token} needs a value")
        overrides[name] = yaml.safe_load(value)  # "false" -> False, "50" -> 50, "null" -> None
    if args.per_class < 1:
        parser.error("--per_class must be >= 1")
    return args, overrides


def _data_settings(config: str, overrides: dict[str, Any]) -> dict[str, Any]:
    preset = load_preset(config)
    data = preset.get("data") or {}
    settings = dict(data.get("init_args") or {})
    settings.update(overrides)
    settings["class_path"] = data.get("class_path", "")
    return settings


def _root(settings: dict[str, Any]) -> Path:
    if settings.get("root"):
        return Path(str(settings["root"])).expanduser()
    if settings["class_path"].endswith("CKPlusDataModule"):
        from litlab.datamodules.embedded import embedded_ckplus_folder

        return embedded_ckplus_folder(int(settings.get("synthetic_subjects", 50)))
    raise ValueError(
        f"the preset's data ({settings['class_path'] or 'none'}) has no class-folder root; "
        "pass --data.root=/path/to/<class>/<image> folders"
    )


def _box_panel(image: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if box is not None:
        x, y, w, h = box
        thickness = max(1, min(image.shape) // 48)
        cv2.rectangle(rgb, (x, y), (x + w - 1, y + h - 1), (255, 0, 0), thickness)
    return rgb


def render_preview(
    root: Path,
    out: Path,
    per_class: int = 1,
    equalize_hist: bool = True,
    canny_low: float = 50.0,
    canny_high: float = 150.0,
) -> Path:
    """Write the preview grid for a class-folder dataset.

    Args:
        root: ``<root>/<class>/<image>`` folder.
        out: PNG to write (parent folders are created).
        per_class: Images per class (the first ones by file name).
        equalize_hist: Find edges on the equalised image (as training does) or the raw one.
        canny_low: Canny lower threshold.
        canny_high: Canny upper threshold.

    Returns:
        ``out``.
    """
    index = index_class_folders(root)
    picks = [
        i
        for label in range(len(index.classes))
        for i in np.flatnonzero(index.labels == label)[:per_class]
    ]
    paths = [index.paths[i] for i in picks]
    images = [decode_image(p) for p in paths]  # sizes may differ between files
    detector = make_face_detector("auto")
    fig = Figure(figsize=(2.0 * len(COLUMNS), 2.0 * len(picks)))
    axes = fig.subplots(len(picks), len(COLUMNS), squeeze=False)
    for row, (i, image) in enumerate(zip(picks, images, strict=True)):
        equalised = equalize(image)
        edges = canny_edges(equalised if equalize_hist else image, canny_low, canny_high)
        box = detector.detect(image) if detector is not None else None
        note = (
            "no cascade in this OpenCV"
            if detector is None
            else ("no face: whole image used" if box is None else "")
        )
        panels = (image, equalised, edges, _box_panel(image, box))
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(panel, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(COLUMNS[col], fontsize=10)
            if col == 0:
                ax.set_ylabel(
                    f"{index.classes[index.labels[i]]}\n{index.paths[i].name}", fontsize=7
                )
            if col == 3 and note:
                ax.set_xlabel(note, fontsize=7, color="darkred")
    fig.suptitle(f"{root}", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def main(argv: list[str]) -> int:
    """``litlab preview`` entry point; returns the exit status."""
    args, overrides = _parse(argv)
    try:
        settings = _data_settings(args.config, overrides)
        out = Path(args.out) if args.out else Path(f"preview-{Path(args.config).stem}.png")
        render_preview(
            _root(settings),
            out,
            per_class=args.per_class,
            equalize_hist=bool(settings.get("equalize", True)),
            canny_low=float(settings.get("canny_low", 50.0)),
            canny_high=float(settings.get("canny_high", 150.0)),
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"litlab preview: error: {err}")
        return 2
    print(f"preview written to {out}")
    return 0
