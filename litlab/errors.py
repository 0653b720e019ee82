"""The one error type for input a user can fix: a file, a row, an option or a value.

Every layer raises :class:`BadInputError` for bad input (data loaders, splits, option checks,
checkpoint and search-space readers); ``litlab`` prints its message as ``litlab: error: ...`` and
exits with code 2. The message names the file, line or value at fault and says what to do.
Anything else that escapes is a bug: :mod:`litlab.failures` reports it as an internal error.

This module imports nothing, so the lowest layers (data plumbing) can raise it without knowing
the layers above.
"""

from __future__ import annotations


class BadInputError(ValueError):
    """Input the user can fix; the message names the file, row, option or value and the fix.

    A ``ValueError``, so code (and tests) that catch the argument checks of the style guide
    (``ValueError`` naming the bad value) catch it too.
    """
