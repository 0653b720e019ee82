"""The argument check every layer shares: a number below its bound, named with the bound and value.

Constructors of DataModules, networks and metrics refuse a value below its least sensible one with
one message shape, ``<option> must be >= <minimum>, got <value>``. This module imports no other
part of litlab, so the lowest layers may use it.
"""

from __future__ import annotations


def check_at_least(option: str, value: float, minimum: float) -> None:
    """Refuse a constructor option's value below ``minimum``.

    Raises:
        ValueError: ``value < minimum``; the message names the option, the bound and the value.
    """
    if value < minimum:
        raise ValueError(f"{option} must be >= {minimum}, got {value}")
