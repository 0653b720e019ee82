"""``litlab export --ckpt_path C --format onnx|torchscript``: a trained network as one file.

The file is written beside the checkpoint (``best.onnx``, ``best.torchscript.pt``). It takes a
float32 batch ``(N, C, H, W)`` of any size ``N`` and returns what the LightningModule's
``forward`` returns. Its metadata says how to use it: the preprocessing from a raw image (the
DataModule's own description, :meth:`litlab.datamodules.base.LitlabDataModule.preprocessing`),
the input shape, the class names and what the output means. Before the command returns, the
exported file is run on random batches of two sizes (onnxruntime for ONNX) and compared with
PyTorch; a difference above the tolerance is an error.

Reading the metadata back::

    onnx.load("best.onnx").metadata_props            # key "litlab", a JSON string
    torch.jit.load("best.torchscript.pt", _extra_files={"litlab.json": ""})
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from litlab.resume import load_checkpoint

log = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
METADATA_KEY = "litlab"  # ONNX metadata_props key; TorchScript extra file "litlab.json"
OUTPUTS = {
    "probabilities": ("logits", "(N, K) logits; softmax over K gives the class probabilities"),
    "embeddings": ("embeddings", "(N, D) L2-normalised embeddings"),
    "masks": ("logits", "(N, K, H, W) per-pixel logits; argmax over K gives the class mask"),
}


class _Network(nn.Module):
    """What is exported: the LightningModule's ``net`` (its ``forward`` minus the checks)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


def _class(path: str, what: str, ckpt: Path) -> type:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"{ckpt}: its {what} {path} cannot be imported ({err})") from err


def load_trained(ckpt_path: Path) -> tuple[pl.LightningModule, pl.LightningDataModule | None]:
    """The checkpoint's LightningModule (eval mode, CPU) and, when it names one, its DataModule.

    Raises:
        ValueError: Not a checkpoint written by ``litlab fit``.
    """
    checkpoint = load_checkpoint(ckpt_path)
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    if "_class_path" not in hparams or "state_dict" not in checkpoint:
        raise ValueError(
            f"{ckpt_path} does not name its LightningModule class; export a checkpoint written "
            "by litlab fit (runs/<preset>/<time>/checkpoints/best.ckpt)"
        )
    module_cls = _class(hparams["_class_path"], "LightningModule", ckpt_path)
    module = module_cls.load_from_checkpoint(str(ckpt_path), map_location="cpu", weights_only=True)
    module.eval()
    data_hp = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    datamodule = None
    if "_class_path" in data_hp:
        data_cls = _class(data_hp.pop("_class_path"), "DataModule", ckpt_path)
        datamodule = data_cls(**{k: v for k, v in data_hp.items() if not k.startswith("_")})
    return module, datamodule


def metadata(
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule | None,
    shape: tuple[int, int, int],
    ckpt_path: Path,
) -> dict[str, Any]:
    """What the exported file expects and returns (JSON-serialisable)."""
    kind = getattr(module, "PREDICTS", "probabilities")
    output_name, meaning = OUTPUTS.get(kind, ("output", "the module's forward output"))
    names = getattr(module, "class_names", None) or module.hparams.get("class_names")
    preprocessing = getattr(datamodule, "preprocessing", None)
    return {
        "task": kind,
        "model": f"{type(module).__module__}.{type(module).__qualname__}",
        "hyper_parameters": {k: v for k, v in module.hparams.items() if not k.startswith("_")},
        "checkpoint": str(ckpt_path),
        "input": {"name": "image", "shape": ["N", *shape], "dtype": "float32"},
        "preprocessing": preprocessing() if callable(preprocessing) else None,
        "output": {"name": output_name, "meaning": meaning},
        "class_names": list(names) if names else None,
    }


def input_shape(
    module: pl.LightningModule, datamodule: pl.LightningDataModule | None, size: int | None
) -> tuple[int, int, int]:
    """``(C, H, W)`` of the model input: channels from the model, size from the data."""
    hp = module.hparams
    channels = hp.get("in_chans") or hp.get("in_channels")
    if size is not None:
        hw = (size, size)
    elif datamodule is not None and hasattr(datamodule, "input_size"):
        hw = tuple(datamodule.input_size)
    else:
        raise ValueError("the checkpoint does not say the input size; pass --image_size")
    if not channels:
        raise ValueError(f"{type(module).__name__} does not say its input channels")
    return int(channels), int(hw[0]), int(hw[1])


def export_onnx(net: nn.Module, example: torch.Tensor, path: Path, meta: dict[str, Any]) -> Path:
    """ONNX through ``torch.export`` (dynamo) with a dynamic batch dimension."""
    import onnx

    batch = torch.export.Dim("batch")
    program = torch.onnx.export(
        net, (example,), dynamo=True, input_names=["image"],
        output_names=[meta["output"]["name"]], dynamic_shapes=({0: batch},), verbose=False,
    )  # fmt: skip
    program.save(str(path))
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    onnx.save(model, str(path))
    return path


def export_torchscript(
    net: nn.Module, example: torch.Tensor, path: Path, meta: dict[str, Any]
) -> Path:
    """A traced TorchScript module; the batch size stays free (checked at two sizes).

    PyTorch deprecates TorchScript in favour of ``torch.export`` (which the ONNX export uses);
    it is offered for runtimes that load TorchScript (LibTorch, older serving stacks).
    """
    with torch.no_grad(), _no_torchscript_deprecation():
        traced = torch.jit.trace(net, example)
        torch.jit.save(traced, str(path), _extra_files={f"{METADATA_KEY}.json": json.dumps(meta)})
    return path


@contextlib.contextmanager
def _no_torchscript_deprecation() -> Iterator[None]:
    """Hide PyTorch's TorchScript FutureWarnings: the user asked for TorchScript."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*")
        yield


def run_exported(path: Path, fmt: str, images: np.ndarray) -> np.ndarray:
    """The exported file's output for a float32 batch (onnxruntime for ONNX)."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: images})[0]
    with torch.no_grad(), _no_torchscript_deprecation():
        return torch.jit.load(str(path)).eval()(torch.from_numpy(images)).numpy()


def max_difference(path: Path, fmt: str, net: nn.Module, shape: tuple[int, int, int]) -> float:
    """Largest ``|exported - PyTorch|`` relative to the output scale, over batches of 1 and 3."""
    worst = 0.0
    for n in (1, 3):
        images = torch.randn(n, *shape, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            expected = net(images).numpy()
        got = run_exported(path, fmt, images.numpy())
        if got.shape != expected.shape:
            raise ValueError(
                f"{path} returned {got.shape} for a batch of {n}, not {expected.shape}"
            )
        scale = max(1.0, float(np.abs(expected).max()))
        worst = max(worst, float(np.abs(got - expected).max()) / scale)
    return worst


def export(
    ckpt_path: str | Path, fmt: str = "onnx", output: str | Path | None = None,
    image_size: int | None = None, tolerance: float = 1e-4,
) -> tuple[Path, float]:  # fmt: skip
    """Export a checkpoint; returns the file and its largest relative difference from PyTorch.

    Raises:
        FileNotFoundError: No such checkpoint.
        ValueError: Unknown format, unreadable checkpoint, or outputs that differ from PyTorch.
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    ckpt_path = Path(ckpt_path).expanduser()
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt_path} does not exist; pass --ckpt_path")
    module, datamodule = load_trained(ckpt_path)
    shape = input_shape(module, datamodule, image_size)
    meta = metadata(module, datamodule, shape, ckpt_path)
    net = _Network(module.net).eval()
    path = Path(output) if output else ckpt_path.with_name(ckpt_path.stem + FORMATS[fmt])
    example = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    (export_onnx if fmt == "onnx" else export_torchscript)(net, example, path, meta)
    difference = max_difference(path, fmt, net, shape)
    if difference > tolerance:
        raise ValueError(
            f"{path} differs from the PyTorch model by {difference:.2e} (relative), more than "
            f"the tolerance {tolerance:g}; try the other --format"
        )
    return path, difference


def main(argv: list[str] | None = None) -> int:
    """``litlab export``; exit 2 on bad input."""
    parser = argparse.ArgumentParser(prog="litlab export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by litlab fit")
    parser.add_argument("--format", choices=tuple(FORMATS), default="onnx")
    parser.add_argument("--output", default=None, help="file to write (default: beside the ckpt)")
    parser.add_argument(
        "--image_size", type=int, default=None, help="input side when the checkpoint has none"
    )
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest relative error")
    args = parser.parse_args(argv)
    for name in ("onnxscript", "onnx_ir"):  # per-pass INFO lines of the ONNX exporter
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        path, difference = export(
            args.ckpt_path, args.format, args.output, args.image_size, args.tolerance
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"litlab export: error: {err}", file=sys.stderr)
        return 2
    print(f"exported:        {path}")
    print(f"checked:         max relative difference from PyTorch {difference:.1e} (batches 1, 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
