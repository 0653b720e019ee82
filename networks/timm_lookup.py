"""timm models by name, with one error for unknown names that lists the similar ones."""

from __future__ import annotations

import difflib
from typing import Any

import timm
from torch import nn


def similar_timm_names(name: str, limit: int = 8) -> list[str]:
    """The timm model names closest in spelling to ``name`` (its pretrained tag ignored).

    Falls back to names containing the first six characters when none is close.
    """
    arch = name.split(".")[0]
    close = difflib.get_close_matches(arch, timm.list_models(), n=limit, cutoff=0.6)
    return close or timm.list_models(f"*{arch[:6]}*")[:limit]


def create_timm_model(name: str, what: str, hint: str = "", **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, **kwargs)``; an unknown name raises ``ValueError`` listing names.

    Args:
        name: A timm model name, with or without a pretrained tag (``"resnet50.a1_in1k"``).
        what: What the name was given for, as the error should say it, e.g.
            ``"timm backbone 'resnet5O'"`` or ``"encoder 'nope' for ResNetFCN"``.
        hint: Extra choices to name in the error (``"'facenet' or a timm model name"``).
        **kwargs: Passed on to ``timm.create_model`` (``pretrained`` defaults to ``False``).

    Raises:
        ValueError: ``name`` is not a timm model; the message lists similar timm names.
    """
    kwargs.setdefault("pretrained", False)
    try:
        return timm.create_model(name, **kwargs)
    except RuntimeError as err:  # timm: "Unknown model (...)"
        if "Unknown model" not in str(err):
            raise
        choices = f"use {hint}; " if hint else ""
        raise ValueError(
            f"unknown {what}; {choices}similar timm names: {similar_timm_names(name)} "
            "(timm.list_models() lists them all)"
        ) from err
