"""Optuna plumbing: storage, samplers, pruners, the shared trial cap, and resuming."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState

log = logging.getLogger(__name__)

SAMPLERS = ("random", "tpe", "gp")
PRUNERS = ("none", "median", "hyperband")
SURPLUS_ATTR = "surplus"  # a trial started after the cap was reached; it did no work
LIVE_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def is_url(storage: str) -> bool:
    return "://" in storage


def make_storage(storage: str) -> optuna.storages.BaseStorage | str:
    """A database URL as-is (PostgreSQL/MySQL/SQLite, for several machines), or a journal file.

    A plain path means an Optuna journal file: embedded, no server, safe for several processes
    on one machine (file locks).
    """
    if is_url(storage):
        return storage
    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def make_sampler(name: str, seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    """``random`` is random search; ``tpe`` and ``gp`` are Bayesian optimisation.

    The Bayesian samplers start with a few random trials (a third of the budget, 2 to 10) so a
    small sweep still spends most trials on the model of the objective.
    """
    startup = min(10, max(2, n_trials // 3))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """Pruners see one report per validation epoch (the objective's metric)."""
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(2, max_epochs), reduction_factor=3
        )
    raise ValueError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards the cap: finished, pruned, running or queued."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False, states=LIVE_STATES)
        if not t.user_attrs.get(SURPLUS_ATTR)
    )


def over_cap(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """Whether ``trial`` is beyond the study-wide cap of ``n_trials``.

    Trial numbers are handed out atomically by the storage, so counting the live trials that
    were numbered before this one gives every worker the same answer: no trial is run twice
    and the total never exceeds the cap, however many workers pull from the study.
    """
    earlier = [
        t
        for t in study.get_trials(deepcopy=False, states=LIVE_STATES)
        if t.number < trial.number and not t.user_attrs.get(SURPLUS_ATTR)
    ]
    return len(earlier) >= n_trials


def requeue_interrupted(study: optuna.Study) -> int:
    """Mark trials left RUNNING by a killed sweep as failed and queue their parameters again.

    Only safe when no other process is working on the study (a journal file on one machine,
    before workers start); a database shared by several machines is left alone.
    """
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number}, skip_if_exists=False)
    if stale:
        log.info("resuming: re-queued %d trial(s) interrupted in a previous run", len(stale))
    return len(stale)
