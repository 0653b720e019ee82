"""The sweep worker loop: take a trial, run it as a process, tell the study; until the cap is met.

Modelled on Optuna's ``_optimize`` loop, with each step one state change recorded in the storage:

1. fail the trials of dead workers (heartbeat, or a dead process on this machine) and queue
   them again;
2. stop when ``--n-trials`` trials are complete or pruned, failing any trial still queued as
   surplus; wait while the rest of the budget is running in other workers (one of them may die,
   and its trial come back);
3. ask for a trial (a queued retry first), record this worker as its owner, run it, tell it.

A live worker's trial is never touched by another worker or command: only a trial whose owner
is gone is failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
from litlab.sweeps.liveness import OWNER_ATTR, host_id, owner_record
from litlab.sweeps.objective import BadTrialInput, TrialEnd, TrialRunner
from litlab.sweeps.study import (
    FAIL_REASON_ATTR,
    SURPLUS_ATTR,
    counted_trials,
    discard_queued,
    done_trials,
    fail_stale_trials,
    over_cap,
    retry_trial,
)
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

Report = Callable[[optuna.Study, FrozenTrial], None]


class TooManyFailures(RuntimeError):
    """More trials in a row failed than the sweep has trials: something is wrong for all."""


@dataclass
class Worker:
    """Pulls trials from ``study`` until ``n_trials`` are complete or pruned.

    Attributes:
        study: The study (with this worker's seeded sampler).
        runner: Runs one trial as a child process.
        n_trials: The study-wide cap.
        worker_index: This worker's index (recorded on its trials).
        seed: Its sampler's seed (recorded on its trials).
        timeout: Start no new trial after this many seconds (``None``: no limit).
        poll: Seconds between looks at the study while others run the last trials.
        report: Called with each trial this worker ends.
        failures_in_a_row: Trials this worker ended as FAIL since its last success.
    """

    study: optuna.Study
    runner: TrialRunner
    n_trials: int
    worker_index: int = 0
    seed: int | None = None
    timeout: float | None = None
    poll: float = 2.0
    report: Report | None = None
    failures_in_a_row: int = field(default=0, init=False)

    def run(self) -> None:
        """The loop; returns when the study has its trials or the timeout is reached."""
        started = time.monotonic()
        said_waiting = False
        while True:
            fail_stale_trials(self.study)
            if done_trials(self.study) >= self.n_trials:
                discard_queued(self.study)  # nothing is left waiting once the budget is met
                return
            if self.timeout is not None and time.monotonic() - started > self.timeout:
                log.info("worker %d: --timeout reached; no new trial", self.worker_index)
                return
            waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            if counted_trials(self.study) >= self.n_trials and not waiting:
                if not said_waiting:
                    log.info(
                        "worker %d: the remaining trials are running in other workers; waiting "
                        "for them (a dead worker's trial is retried here)",
                        self.worker_index,
                    )
                    said_waiting = True
                time.sleep(self.poll)
                continue
            said_waiting = False
            self._run_one(self.study.ask())

    def _run_one(self, trial: optuna.Trial) -> None:
        storage = self.study._storage
        storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, owner_record(trial._trial_id))
        if over_cap(self.study, trial, self.n_trials):
            trial.set_user_attr(SURPLUS_ATTR, True)
            self.study.tell(trial, state=TrialState.FAIL)
            return
        trial.set_user_attr("worker", f"{host_id().split(':')[0]}/{self.worker_index}")
        if self.seed is not None:
            trial.set_user_attr("sampler_seed", self.seed)
        try:
            end = self.runner.run(trial)
        except KeyboardInterrupt:
            stop = TrialEnd(TrialState.FAIL, attrs={FAIL_REASON_ATTR: "interrupted"}, retry=True)
            self._tell(trial, stop)
            raise
        except BadTrialInput as err:
            reason = f"bad input (exit code 2); see {err.log_path}"
            self._tell(trial, TrialEnd(TrialState.FAIL, attrs={FAIL_REASON_ATTR: reason}))
            raise
        self._tell(trial, end)
        if end.state == TrialState.FAIL:
            self.failures_in_a_row += 1
            if self.failures_in_a_row > self.n_trials:
                raise TooManyFailures(
                    f"{self.failures_in_a_row} trials in a row failed (the last: "
                    f"{end.attrs.get(FAIL_REASON_ATTR)}); see the fit.log of each in "
                    f"{self.runner.study_dir}"
                )
        else:
            self.failures_in_a_row = 0

    def _tell(self, trial: optuna.Trial, end: TrialEnd) -> None:
        """Record ``end`` on the trial, unless another worker already failed it as stale."""
        try:
            for key, value in end.attrs.items():
                trial.set_user_attr(key, value)
            if end.state == TrialState.COMPLETE:
                self.study.tell(trial, end.value, skip_if_finished=True)
            else:
                self.study.tell(trial, state=end.state, skip_if_finished=True)
        except UpdateFinishedTrialError:
            pass
        frozen = self.study._storage.get_trial(trial._trial_id)
        # Ours landed iff the stored end is ours: a stale-failing worker writes its own reason.
        reason = frozen.user_attrs.get(FAIL_REASON_ATTR)
        if frozen.state != end.state or reason != end.attrs.get(FAIL_REASON_ATTR):
            log.warning(
                "trial %d was failed by another worker meanwhile (%s); this run's result stays "
                "in its run folder only",
                trial.number,
                reason,
            )
            return
        if end.retry:
            retry_trial(self.study, frozen)
        if self.report is not None:
            self.report(self.study, frozen)
