"""The names a sweep trial and its ``litlab fit`` process agree on, importable without Lightning.

The sweep worker sets :data:`STORAGE_ENV` for the trial's process and reads :data:`PRUNED_ATTR`
back from the study; :class:`~litlab.callbacks.optuna_pruning.OptunaPruning`, inside the run,
reads the one and writes the other. Kept apart from the callback so the worker (a light process)
does not load Lightning to know two strings.
"""

from __future__ import annotations

#: Environment variable holding the study storage (journal path or database URL) of the trial.
STORAGE_ENV = "LITLAB_OPTUNA_STORAGE"
#: Trial system attribute where a pruned trial records the epoch it was pruned after.
PRUNED_ATTR = "litlab:pruned_epoch"
