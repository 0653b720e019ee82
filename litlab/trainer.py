"""The Trainer ``litlab`` builds: Lightning's, with batch limits that read ``1`` as one batch.

Lightning's ``Trainer`` reads ``limit_train_batches=1`` (an int) as one batch and ``1.0`` (a float)
as every batch. Its annotation ``Optional[Union[int, float]]`` can reach the parser as
``Union[float, int, None]``: ``typing`` caches unions by their set of members, so whichever order
another import spelled first wins. jsonargparse tries the members in order, so
``--trainer.limit_train_batches=1`` became ``1.0``, i.e. all batches. This subclass declares the
limits int-first with PEP 604 unions, which no cache reorders.

A value Lightning refuses (``--trainer.max_epochs=-5``, an accelerator this machine lacks) is a
:class:`~litlab.errors.BadInputError` naming the ``--trainer`` option, not a traceback.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.exceptions import MisconfigurationException

from litlab.errors import BadInputError


class Trainer(pl.Trainer):
    """``lightning.pytorch.Trainer`` whose batch limits parse ``1`` as an int.

    Args:
        limit_train_batches: Training batches per epoch: an int counts batches (``1`` is one
            batch), a float is a fraction (``0.25``, ``1.0`` = all). Default: all.
        limit_val_batches: The same for validation.
        limit_test_batches: The same for testing.
        limit_predict_batches: The same for prediction.
        overfit_batches: Train and validate on this many training batches (int) or this
            fraction of them (float); ``0`` turns it off.
        **kwargs: Every other ``lightning.pytorch.Trainer`` argument.
    """

    def __init__(
        self,
        *,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        limit_predict_batches: int | float | None = None,
        overfit_batches: int | float = 0.0,
        **kwargs: Any,
    ) -> None:
        try:
            super().__init__(
                limit_train_batches=limit_train_batches,
                limit_val_batches=limit_val_batches,
                limit_test_batches=limit_test_batches,
                limit_predict_batches=limit_predict_batches,
                overfit_batches=overfit_batches,
                **kwargs,
            )
        except (MisconfigurationException, ValueError) as err:
            raise option_error(err) from err
        except ImportError as err:  # e.g. an accelerator whose package is not installed
            raise BadInputError(
                f"a --trainer option needs a package that is not installed: {err}. Install it, "
                "or choose another --trainer.accelerator / --trainer.strategy / --trainer.precision"
            ) from err


def option_error(err: Exception) -> BadInputError:
    """Lightning's refusal of a Trainer argument as an error naming the ``--trainer`` option.

    The option is the first ``Trainer`` argument the message names: in backquotes
    (```max_epochs` must be ...``, ```Trainer(devices=0)` ...``), else anywhere (``Precision 'x'
    is invalid``); without one the message asks to check the options.
    """
    arguments = inspect.signature(pl.Trainer.__init__).parameters
    text = str(err)
    quoted = " ".join(re.findall(r"`([^`]*)`", text))
    words = re.findall(r"[A-Za-z_]\w*", quoted) + re.findall(r"[A-Za-z_]\w*", text)
    named = [w.lower() for w in words if w.lower() in arguments and w.lower() != "self"]
    option = f"--trainer.{named[0]}" if named else "a --trainer option"
    return BadInputError(f"{option}: {text} Fix {option} (litlab fit --help lists the options).")
