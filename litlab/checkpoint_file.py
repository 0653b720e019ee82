"""Reading a checkpoint file safely, and saying what is wrong with one that cannot be read.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain values only, so a
file cannot run code on the machine that loads it. A file that fails is a
:class:`~litlab.errors.BadInputError` saying which of these it is:

* a pickle that would call code while loading (named, found by scanning its opcodes, never by
  running them): refused, and why;
* a damaged or cut-off zip archive (a copy or a write that did not finish);
* an empty file, a folder, or a file that is no PyTorch checkpoint at all.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import Any

import torch

from litlab.errors import BadInputError

# Globals a litlab checkpoint's pickle uses; any other one is named when a file is refused.
_PLAIN_GLOBALS = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set")
_HINT = "use a checkpoint written by litlab fit (runs/<preset>/<time>/checkpoints/)"


def read_checkpoint(path: str | Path, mmap: bool = True) -> dict[str, Any]:
    """A checkpoint's contents, read with ``weights_only=True`` (memory-mapped when possible).

    Raises:
        BadInputError: The file cannot be read as a checkpoint; the message names it, says why
            and what to do.
    """
    path = Path(path)
    try:
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as err:
            if not mmap or "mmap can only be used" not in str(err):
                raise
            return torch.load(str(path), map_location="cpu", weights_only=True)  # legacy format
    except Exception as err:
        raise checkpoint_error(path, err) from err


def pickled_globals(path: Path) -> list[str]:
    """The ``module.name`` globals a checkpoint's pickle refers to, read without unpickling.

    Looks inside the zip archive ``torch.save`` writes (its ``data.pkl``) or at a plain pickle;
    returns what it could read before the data ended (empty for other files).
    """
    try:
        data = path.read_bytes()
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                data = archive.read(name) if name else b""
    except (OSError, zipfile.BadZipFile, KeyError):
        return []
    found: list[str] = []
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == "GLOBAL":
                found.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # the data ends or is not a pickle: keep what was read
        pass
    return list(dict.fromkeys(found))


def _torch_reason(text: str) -> str:
    """The line of torch's weights-only refusal that says what it met (not its advice)."""
    advice = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = [line for line in lines if not line.startswith(advice)]
    return found[0] if found else "objects other than tensors and plain values"


def checkpoint_error(path: Path, err: Exception) -> BadInputError:
    """What is wrong with the checkpoint ``path`` that ``torch.load`` failed on with ``err``."""
    if isinstance(err, IsADirectoryError) or path.is_dir():
        return BadInputError(f"checkpoint {path} is a folder, not a file; pass a .ckpt file")
    if isinstance(err, OSError):
        return BadInputError(f"cannot read checkpoint {path}: {err.strerror or err}")
    with path.open("rb") as f:
        head = f.read(4)
    if not head:
        return BadInputError(f"checkpoint {path} is empty (0 bytes); {_HINT}")
    zipped = head == b"PK\x03\x04"  # torch.save's archive; else a pickle starts with PROTO 2-5
    pickled = len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5
    if not (zipped or pickled):
        return BadInputError(
            f"{path} is not a PyTorch checkpoint (neither the zip archive torch.save writes nor "
            f"a pickle); {_HINT}"
        )
    if isinstance(err, pickle.UnpicklingError) and "weights only" in str(err).lower():
        code = [g for g in pickled_globals(path) if not g.startswith(_PLAIN_GLOBALS)]
        what = (
            f"would call {', '.join(code[:3])} while loading: code, not only tensors and "
            "plain values"
            if code
            else f"is not one weights-only loading accepts ({_torch_reason(str(err))})"
        )
        return BadInputError(
            f"refused to load checkpoint {path}: its pickle {what}. litlab reads checkpoints "
            "with torch.load(weights_only=True), because unpickling anything else can run "
            f"arbitrary code on this machine; {_HINT}, and open this file only if you trust "
            "whoever made it"
        )
    text = str(err).strip()
    reason = text.splitlines()[0].split(". ")[0] if text else type(err).__name__
    return BadInputError(
        f"checkpoint {path} is damaged or incomplete ({reason}): it was cut off while being "
        "copied or written. Copy it again, or use another checkpoint of the run (last.ckpt or "
        "best.ckpt)"
    )
