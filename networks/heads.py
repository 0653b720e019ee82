"""Which parameters are a classifier's head, and freezing everything else (head-only training)."""

from __future__ import annotations

from torch import nn


def head_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the classifier head (timm ``get_classifier()``, else the last Linear)."""
    head: nn.Module | None = None
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
    if not isinstance(head, nn.Module) or not any(True for _ in head.parameters()):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        head = linears[-1] if linears else None
    if head is None:
        return set()
    for name, module in model.named_modules():
        if module is head:
            return {f"{name}.{k}" if name else k for k in head.state_dict()}
    return set()


def set_backbone_trainable(model: nn.Module, trainable: bool) -> int:
    """Freeze (``False``) or unfreeze (``True``) every parameter except the classifier head's.

    BatchNorm statistics still update in training mode; only gradients are switched off.

    Returns:
        The number of parameter tensors changed.
    """
    head = head_keys(model)
    changed = 0
    for name, param in model.named_parameters():
        if name not in head and param.requires_grad != trainable:
            param.requires_grad_(trainable)
            changed += 1
    return changed
