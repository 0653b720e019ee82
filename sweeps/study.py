"""Optuna plumbing: samplers, pruners, the study-wide trial cap, stale trials and their retry."""

from __future__ import annotations

import copy
import importlib
import logging
import os
import time
from typing import Any

import numpy as np
import optuna
from litlab.sweeps.liveness import OWNER_ATTR, dead_owner_trial_ids, owner_record
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

SAMPLERS = ("random", "tpe", "gp")
PRUNERS = ("none", "median", "hyperband")
SURPLUS_ATTR = "surplus"  # a trial started after the cap was reached; it did no work
FAIL_REASON_ATTR = "fail_reason"
MAX_RETRIES = 1  # a trial whose process died is queued again once, then given up
LIVE_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def sampler_seed(base: int, worker: int) -> int:
    """A seed for one worker's one start: from ``--seed``, the worker index, the pid and the time.

    Every start of every worker draws its own sequence, so a resumed or concurrent sweep never
    replays parameters another start already tried (a fixed seed per worker would).
    """
    entropy = [base, worker, os.getpid(), time.time_ns() % 2**63]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


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


def pruner_spec(name: str, max_epochs: int) -> dict[str, Any]:
    """The pruner as ``{"class_path", "init_args"}``: the trial process builds it from this.

    ``name`` is ``none``, ``median``, ``hyperband`` or the import path of a pruner class
    (``package.module.Class`` or ``package.module:Class``) built without arguments. Pruners see
    one report per validation epoch.
    """
    if name == "none":
        return {"class_path": "optuna.pruners.NopPruner", "init_args": {}}
    if name == "median":
        return {
            "class_path": "optuna.pruners.MedianPruner",
            "init_args": {"n_startup_trials": 2, "n_warmup_steps": 1},
        }
    if name == "hyperband":
        return {
            "class_path": "optuna.pruners.HyperbandPruner",
            "init_args": {
                "min_resource": 1,
                "max_resource": max(2, max_epochs),
                "reduction_factor": 3,
            },
        }
    if "." in name or ":" in name:
        return {"class_path": name.replace(":", "."), "init_args": {}}
    raise ValueError(
        f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)} or give a pruner class's "
        "import path (package.module.Class)"
    )


def make_pruner(spec: dict[str, Any]) -> optuna.pruners.BasePruner:
    """Build the pruner of :func:`pruner_spec` (the worker checks the name works before trials)."""
    module, _, attr = spec["class_path"].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"cannot import pruner {spec['class_path']!r}: {err}") from err
    pruner = cls(**spec["init_args"])
    if not isinstance(pruner, optuna.pruners.BasePruner):
        raise ValueError(f"{spec['class_path']} is not an optuna.pruners.BasePruner")
    return pruner


def _counted(study: optuna.Study, states: tuple[TrialState, ...]) -> list[FrozenTrial]:
    return [
        t
        for t in study.get_trials(deepcopy=False, states=states)
        if not t.user_attrs.get(SURPLUS_ATTR)
    ]


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards the cap: finished, pruned, running or queued."""
    return len(_counted(study, LIVE_STATES))


def done_trials(study: optuna.Study) -> int:
    """Trials that are over and count: complete or pruned."""
    return len(_counted(study, DONE_STATES))


def over_cap(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """Whether ``trial`` is beyond the study-wide cap of ``n_trials``.

    Trial numbers are handed out atomically by the storage, so counting the live trials that
    were numbered before this one gives every worker the same answer: no trial is run twice
    and the total never exceeds the cap, however many workers pull from the study.
    """
    earlier = [t for t in _counted(study, LIVE_STATES) if t.number < trial.number]
    return len(earlier) >= n_trials


def retry_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a failed trial's parameters again, at most :data:`MAX_RETRIES` times per original.

    This is Optuna's ``RetryHeartbeatStaleTrialCallback`` (its ``failed_trial``/``retry_history``
    records), given the trial without its user attributes, so the retry does not inherit the
    failed attempt's reason, run folder or metrics.
    """
    clean = copy.deepcopy(trial)
    clean.user_attrs = {}
    before = len(study.get_trials(deepcopy=False))
    RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)(study, clean)
    if len(study.get_trials(deepcopy=False)) > before:
        log.info("trial %d: its parameters are queued again", trial.number)
    else:
        log.info(
            "trial %d: already retried %d time(s); not queued again", trial.number, MAX_RETRIES
        )


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Fail running trials whose worker is gone (heartbeat stale, or dead on this machine).

    Like Optuna's ``fail_stale_trials``, with the reason recorded first; then the storage's
    stale-trial callback (:func:`retry_trial`) queues each again. When several workers race,
    only the one whose FAIL lands first retries the trial. Returns the failed trial numbers.
    """
    storage = study._storage
    stale = storage._get_stale_trial_ids(study._study_id)  # type: ignore[attr-defined]
    if not stale:
        return []
    dead_here = set(dead_owner_trial_ids(storage, study._study_id))
    grace = 2 * (storage.get_heartbeat_interval() or 0)  # type: ignore[attr-defined]
    failed = []
    for trial_id in stale:
        reason = (
            "its worker process on this machine is gone"
            if trial_id in dead_here
            else f"its worker sent no heartbeat for over {grace} s (worker or machine lost)"
        )
        try:
            storage.set_trial_user_attr(trial_id, FAIL_REASON_ATTR, reason)
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(trial_id)
        except UpdateFinishedTrialError:
            continue  # another worker failed it first
    callback = storage.get_heartbeat_stale_trial_callback()  # type: ignore[attr-defined]
    numbers = []
    for trial_id in failed:
        frozen = storage.get_trial(trial_id)
        numbers.append(frozen.number)
        log.warning("trial %d failed: %s", frozen.number, frozen.user_attrs[FAIL_REASON_ATTR])
        if callback is not None:
            callback(study, frozen)
    return numbers


def discard_queued(study: optuna.Study) -> list[int]:
    """Fail the trials still queued (WAITING) once the budget is met: surplus, never run.

    No worker starts a trial once ``--n-trials`` are done, so a queued trial would wait forever:
    a retry queued while another worker had already started a fresh trial in its place (a race at
    the cap), or a trial queued by hand after the sweep ended. Each is claimed the way Optuna's
    ``ask`` claims one (WAITING to RUNNING, which only one process wins), recorded as this
    worker's, marked surplus and failed. Returns their numbers.
    """
    storage = study._storage
    numbers = []
    while (trial_id := study._pop_waiting_trial_id()) is not None:
        storage.set_trial_system_attr(trial_id, OWNER_ATTR, owner_record(trial_id))
        storage.set_trial_user_attr(trial_id, SURPLUS_ATTR, True)
        reason = "queued after the budget of --n-trials was met; not run"
        storage.set_trial_user_attr(trial_id, FAIL_REASON_ATTR, reason)
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        numbers.append(storage.get_trial_number_from_id(trial_id))
        log.info("trial %d: %s", numbers[-1], reason)
    return numbers
