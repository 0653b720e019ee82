"""Initialise a network from pretrained weights: a timm hub tag or a local file.

Accepted sources (``spec``):

* a timm hub tag such as ``"resnet50.a1_in1k"`` (or a bare ``"resnet50"`` for its default tag):
  read from the local Hugging Face cache, or downloaded when the hub can be reached. Offline and
  not cached, it fails at once with an error naming the local-file alternative;
* a local file (``.pth``/``.pt``/``.bin``/``.ckpt``/``.safetensors``) holding a timm or
  torchvision state dict, a ``{"state_dict"|"model"|"model_state_dict": ...}`` wrapper, or a
  litlab Lightning checkpoint (keys under ``state_dict`` with the module's ``net.`` prefix) —
  for example the FER2013 run's ``best.ckpt``, which makes FER2013 -> CK+ transfer work offline.

Files are read with ``torch.load(weights_only=True)``: no code in a checkpoint is executed.

Matching rules: same-name same-shape tensors are copied; the first conv is adapted between 3
and 1 or 2 input channels (timm's ``adapt_input_conv``: summed over RGB for gray input); the
classifier head is never copied (a head belongs to its task: FER2013's class 1 is *disgust*,
CK+'s is *contempt*, even though both heads are 7 wide) unless ``load_head=True`` and shapes
agree. Everything that did not match is listed in the :class:`LoadReport`, and with
``strict_backbone=True`` any backbone tensor left unloaded is an error that lists them.
"""

from __future__ import annotations

import logging
import pickle
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from litlab.networks.heads import head_keys
from torch import nn

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
# Prefixes under which a wrapper stores the bare network (Lightning modules, DDP, EMA copies).
_PREFIXES = ("", "net.", "model.", "module.", "model.net.", "backbone.", "encoder.")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
HUB_HOST = "huggingface.co"
OFFLINE_HINT = (
    "offline, pass a local weights file instead: a timm/torchvision state dict (.pth or "
    ".safetensors) or a litlab checkpoint, e.g. "
    "--model.pretrained=/path/to/fer2013/checkpoints/best.ckpt"
)


class PretrainedLoadError(ValueError):
    """The weights could not be matched to the network; the message lists what did not fit."""


class HubUnavailableError(ConnectionError, FileNotFoundError):
    """A hub tag's weights are neither cached nor downloadable (a connection problem, and a
    missing weights file, so callers catching either see it)."""


@dataclass
class LoadReport:
    """What :func:`load_pretrained` copied, adapted and left out.

    Attributes:
        source: The spec (hub tag or resolved file path).
        prefix: Key prefix stripped from the file (``"net."`` for litlab checkpoints).
        loaded: Model keys whose values came from the file.
        adapted: Keys copied after adapting input channels (the first conv).
        head_kept: Head keys left as newly initialised.
        missing: Backbone keys of the model the file did not provide.
        unexpected: File keys the model has no place for.
        mismatched: ``(key, file shape, model shape)`` of same-name tensors that did not fit.
        ignored: File keys outside the network's prefix (e.g. other parts of a LightningModule).
    """

    source: str
    prefix: str = ""
    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    head_kept: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line per category, with the first few keys of each."""

        def few(items: list) -> str:
            shown = ", ".join(str(i) for i in items[:6])
            return f"{len(items)}" + (
                f" ({shown}{', ...' if len(items) > 6 else ''})" if items else ""
            )

        return (
            f"pretrained {self.source}: loaded {len(self.loaded)} tensors"
            f"{f' (prefix {self.prefix!r} stripped)' if self.prefix else ''}; "
            f"adapted {few(self.adapted)}; head kept new {few(self.head_kept)}; "
            f"missing {few(self.missing)}; unexpected {few(self.unexpected)}; "
            f"mismatched {few(self.mismatched)}"
        )


def _first_conv_key(model: nn.Module) -> str | None:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("first_conv")
    names = [names] if isinstance(names, str) else list(names or [])
    state = model.state_dict()
    for name in names:
        if f"{name}.weight" in state:
            return f"{name}.weight"
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return f"{name}.weight"
    return None


def _adapt_channels(weight: torch.Tensor, in_chans: int) -> torch.Tensor | None:
    """Conv weight ``(O, I, k, k)`` -> ``(O, in_chans, k, k)``; ``None`` when no rule applies."""
    source = weight.shape[1]
    if source == 3:
        return timm.models.adapt_input_conv(in_chans, weight)
    if in_chans == 1:  # e.g. a 2-channel (gray+edges) source into a gray model
        return weight.sum(dim=1, keepdim=True)
    if source == 1:  # a gray source (FER2013) into a multi-channel model: split its response
        return weight.repeat(1, in_chans, 1, 1) / in_chans
    return None


def _read_file(path: Path) -> Mapping[str, object]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise PretrainedLoadError(
            f"{path} cannot be read with torch.load(weights_only=True) (it holds more than "
            f"tensors and plain values): {err}. Save just the weights, e.g. "
            "torch.save(model.state_dict(), 'weights.pth')"
        ) from err
    except (RuntimeError, EOFError) as err:
        raise PretrainedLoadError(f"{path} is not a readable PyTorch weights file: {err}") from err


def _unwrap(obj: Mapping[str, object], source: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise PretrainedLoadError(f"{source} holds a {type(obj).__name__}, not a state dict")
    for key in _WRAPPER_KEYS:
        inner = obj.get(key)
        if (
            isinstance(inner, Mapping)
            and inner
            and all(isinstance(v, torch.Tensor) for v in inner.values())
        ):
            obj = inner
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise PretrainedLoadError(
            f"{source} holds no tensors (top-level keys: {list(obj)[:8]}); expected a state dict "
            "or a checkpoint with a 'state_dict' entry"
        )
    return tensors


def _hub_reachable(host: str = HUB_HOST, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_state_dict(tag: str) -> dict[str, torch.Tensor]:
    """Weights for a timm tag: from the Hugging Face cache, else the hub, else a clear error."""
    if not timm.is_model(tag):
        raise FileNotFoundError(
            f"pretrained={tag!r} is neither an existing file nor a timm model tag "
            "(see timm.list_pretrained()); pass a weights file path or a tag like 'resnet50.a1_in1k'"
        )
    cfg = timm.models.get_pretrained_cfg(tag)  # a bare name resolves to its default tag
    cfg_id = getattr(cfg, "hf_hub_id", None)
    if cfg_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            cached = try_to_load_from_cache(cfg_id, filename)
            if isinstance(cached, str):
                log.info("pretrained %s: using cached %s", tag, cached)
                return _unwrap(_read_file(Path(cached)), cached)
    # Checked first because the hub client retries for about a minute before giving up.
    if not _hub_reachable():
        raise HubUnavailableError(
            f"pretrained={tag!r} is a timm hub tag, but {HUB_HOST} cannot be reached and the "
            f"weights are not in the local Hugging Face cache; {OFFLINE_HINT}"
        )
    try:
        return dict(timm.create_model(tag, pretrained=True).state_dict())
    except Exception as err:  # network/hub errors come in many types; all mean the same here
        raise HubUnavailableError(
            f"could not fetch timm weights {tag!r}: {err}; {OFFLINE_HINT}"
        ) from err


def _best_prefix(source: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> str:
    def hits(prefix: str) -> int:
        n = len(prefix)
        return sum(1 for k in source if k.startswith(prefix) and k[n:] in target)

    return max(_PREFIXES, key=hits)  # ties keep the earlier (shorter) prefix


def load_pretrained(
    model: nn.Module,
    spec: str,
    strict_backbone: bool = True,
    load_head: bool = False,
    min_backbone_fraction: float = 0.5,
) -> LoadReport:
    """Copy pretrained weights into ``model`` in place.

    Args:
        model: The network (a timm model, or any ``nn.Module``).
        spec: A local weights file or a timm hub tag (see the module docstring).
        strict_backbone: Every non-head tensor must be loaded and every file tensor used;
            otherwise an error lists the missing, mismatched and unexpected ones.
        load_head: Also copy the classifier head when its shape matches (off by default: a head
            is specific to its task's classes).
        min_backbone_fraction: With ``strict_backbone=False``, the least share of backbone
            tensors that must load.

    Returns:
        What was loaded, adapted and left out.

    Raises:
        FileNotFoundError: ``spec`` is neither a file nor a timm tag.
        HubUnavailableError: A hub tag without network and not cached (the message names the
            local-file alternative); a ``ConnectionError`` and a ``FileNotFoundError``.
        PretrainedLoadError: Unreadable file, or too little of the backbone matched.
    """
    path = Path(spec).expanduser()
    looks_like_file = path.suffix in WEIGHT_SUFFIXES or "/" in spec or "\\" in spec
    trained_as = ""
    if path.is_file():
        raw = _read_file(path)
        source = _unwrap(raw, str(path))
        name = str(path)
        hparams = raw.get("hyper_parameters") if isinstance(raw, Mapping) else None
        if isinstance(hparams, Mapping):
            shown = {k: hparams[k] for k in ("backbone", "stem", "in_chans") if k in hparams}
            trained_as = f" The file was trained with {shown}." if shown else ""
    elif looks_like_file:
        raise FileNotFoundError(f"pretrained weights file {path} does not exist")
    else:
        source = _hub_state_dict(spec)
        name = spec

    target = model.state_dict()
    prefix = _best_prefix(source, target)
    report = LoadReport(source=name, prefix=prefix)
    head = head_keys(model)
    first_conv = _first_conv_key(model)
    new_state: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if not key.startswith(prefix):
            report.ignored.append(key)
            continue
        key = key[len(prefix) :]
        if key not in target:
            report.unexpected.append(key)
            continue
        if key in head and not load_head:
            continue
        want = target[key]
        if value.shape == want.shape:
            new_state[key] = value.to(want.dtype)
            report.loaded.append(key)
            continue
        if (
            key == first_conv
            and value.ndim == 4
            and value.shape[2:] == want.shape[2:]
            and value.shape[0] == want.shape[0]
        ):
            adapted = _adapt_channels(value, want.shape[1])
            if adapted is not None:
                new_state[key] = adapted.to(want.dtype)
                report.loaded.append(key)
                report.adapted.append(f"{key} {tuple(value.shape)}->{tuple(want.shape)}")
                continue
        if key in head:
            continue  # a different-size head is expected: the new one is kept
        report.mismatched.append((key, tuple(value.shape), tuple(want.shape)))
    report.head_kept = sorted(k for k in head if k not in new_state)
    backbone = [k for k in target if k not in head]
    report.missing = [k for k in backbone if k not in new_state]

    n_loaded = sum(1 for k in backbone if k in new_state)
    problem = None
    if n_loaded == 0:
        problem = "no backbone tensor matched"
    elif strict_backbone and (report.missing or report.mismatched):
        problem = f"{len(backbone) - n_loaded} of {len(backbone)} backbone tensors did not load"
    elif strict_backbone and report.unexpected:
        # Everything fitted, but the file has more: a bigger sibling network (resnet34 into
        # resnet18) whose weights would load only in part.
        problem = f"{len(report.unexpected)} tensors in the file have no place in the model"
    elif not strict_backbone and n_loaded < min_backbone_fraction * len(backbone):
        problem = f"only {n_loaded} of {len(backbone)} backbone tensors loaded"
    if problem:
        mism = "; ".join(f"{k}: file {a} vs model {b}" for k, a, b in report.mismatched[:8])
        raise PretrainedLoadError(
            f"{name} does not fit {type(model).__name__}: {problem}. "
            f"Missing: {report.missing[:8]}{' ...' if len(report.missing) > 8 else ''}. "
            f"Mismatched: {mism or 'none'}. Unexpected: {report.unexpected[:8]}.{trained_as} "
            "Build the model like the source network (same backbone, and the same stem: a "
            "FER2013 stem='fer48' checkpoint needs --model.stem=fer48), or pass "
            "strict_backbone=False to accept a partial match."
        )
    model.load_state_dict(new_state, strict=False)
    log.info("%s", report.summary())
    return report
