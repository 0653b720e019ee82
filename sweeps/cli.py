"""``litlab sweep``: Optuna random search / Bayesian optimisation over a preset, trial = process.

Examples::

    litlab sweep --config liver-deeplabv3plus --sampler tpe --n-trials 20 --trainer.max_epochs=30
    litlab sweep --config liver-deeplabv3plus --gpus 0,1,2,3 --gpus-per-trial 2
    litlab sweep --config liver-deeplabv3plus --storage postgresql://u:p@db/optuna --heartbeat 60

Every option not listed below (``--trainer.max_epochs=3``, ``--data.root=/data/lits`` ...) is
passed to every trial as ``litlab fit`` would take it. ``--n-trials`` caps the whole study,
across all workers, commands and machines: running the same command again resumes the study, and
a trial whose worker died is retried.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

import optuna
from litlab.sweeps.finish import finish, progress_line
from litlab.sweeps.objective import BadTrialInput, StorageLost, TrialRunner
from litlab.sweeps.outputs import parse_overrides
from litlab.sweeps.space import load_space
from litlab.sweeps.storage import DamagedJournal, make_storage, masked
from litlab.sweeps.study import (
    PRUNERS,
    SAMPLERS,
    make_pruner,
    make_sampler,
    pruner_spec,
    retry_trial,
    sampler_seed,
)
from litlab.sweeps.worker import TooManyFailures, Worker

from litlab.presets import load_preset, resolve_preset
from litlab.runs import gpu_slots, start_process

log = logging.getLogger(__name__)

STORAGE_ENV = "LITLAB_SWEEP_STORAGE"  # keeps a database password off the process list


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="litlab sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, help="preset name or YAML path")
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="tpe",
        help="random = random search; tpe/gp = Bayesian",
    )
    p.add_argument(
        "--n-trials", type=int, default=20, help="complete or pruned trials in the whole study"
    )
    p.add_argument(
        "--pruner",
        default="median",
        help=f"{', '.join(PRUNERS)}, or a pruner class's import path (package.module.Class)",
    )
    p.add_argument(
        "--storage",
        default=os.environ.get(STORAGE_ENV),
        help="journal file (default runs/sweeps/<study>.journal) or database URL "
        f"(default ${STORAGE_ENV})",
    )
    p.add_argument("--study-name", default=None, help="default: <preset>-<sampler>")
    p.add_argument(
        "--gpus", default=None, help="comma-separated GPU ids of this machine for the trials"
    )
    p.add_argument("--gpus-per-trial", type=int, default=1, help="GPUs per trial (DDP when > 1)")
    p.add_argument(
        "--workers", type=int, default=1, help="concurrent trials when no --gpus are given"
    )
    p.add_argument(
        "--heartbeat",
        type=int,
        default=60,
        help="seconds between heartbeats; a trial is retried after twice that without one",
    )
    p.add_argument(
        "--timeout", type=float, default=None, help="stop starting new trials after T seconds"
    )
    p.add_argument("--seed", type=int, default=0, help="base seed of the samplers")
    p.add_argument("--space", default=None, help="search-space YAML (default: <preset>.sweep.yaml)")
    p.add_argument("--output-dir", default="runs/sweeps", help="where study folders go")
    p.add_argument(
        "--no-test-best", action="store_true", help="skip testing the best trial's checkpoint"
    )
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-gpus", default=None, help=argparse.SUPPRESS)
    return p


def _preset_name(config: str) -> str:
    return Path(config).stem if config.endswith((".yaml", ".yml")) else config


def _max_epochs(config: str, overrides: dict) -> int:
    if "trainer.max_epochs" in overrides:
        return int(overrides["trainer.max_epochs"])
    return int((load_preset(config).get("trainer") or {}).get("max_epochs") or 10)


class Sweep:
    """One sweep's settings, shared by the parent process and its workers."""

    def __init__(self, args: argparse.Namespace, overrides: list[str]) -> None:
        resolve_preset(args.config)  # fail now, with the list of presets, on a typo
        if args.n_trials < 1:
            raise ValueError(f"--n-trials must be >= 1, got {args.n_trials}")
        self.args = args
        parsed = parse_overrides(overrides)
        self.study_name = args.study_name or f"{_preset_name(args.config)}-{args.sampler}"
        self.study_dir = Path(args.output_dir) / self.study_name
        self.storage_spec = args.storage or str(
            Path(args.output_dir) / f"{self.study_name}.journal"
        )
        space = load_space(args.config, args.space)
        fixed = set(parsed) & set(space.params)
        if fixed:
            log.info("fixed on the command line, not searched: %s", ", ".join(sorted(fixed)))
        self.space = space.without(fixed)
        self.pruner = pruner_spec(args.pruner, _max_epochs(args.config, parsed))
        make_pruner(self.pruner)  # an unknown class fails here, not in every trial
        self.slots: list[str | None] = (
            list(gpu_slots(args.gpus, args.gpus_per_trial)) if args.gpus else [None] * args.workers
        )
        if not self.slots:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        device_defaults = []
        if args.gpus:
            if "trainer.accelerator" not in parsed:
                device_defaults.append("--trainer.accelerator=gpu")
            if "trainer.devices" not in parsed:
                device_defaults.append(f"--trainer.devices={args.gpus_per_trial}")
        self.overrides = overrides
        self.trial_overrides = device_defaults + overrides
        self.storage = make_storage(self.storage_spec, args.heartbeat, retry_trial)

    def study(self, seed: int = 0) -> optuna.Study:
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=make_sampler(self.args.sampler, seed, self.args.n_trials),
            pruner=make_pruner(self.pruner),
            direction=self.space.direction,
            load_if_exists=True,
        )
        if study.direction.name.lower() != self.space.direction:
            raise ValueError(
                f"study {self.study_name!r} in {masked(self.storage_spec)} was created to "
                f"{study.direction.name.lower()}; this space says {self.space.direction}: use "
                "another --study-name"
            )
        if study.user_attrs.get("metric") != self.space.metric:
            study.set_user_attr("metric", self.space.metric)
            study.set_user_attr("config", self.args.config)
        return study

    def run_worker(self, index: int, gpus: str | None) -> None:
        seed = sampler_seed(self.args.seed, index)
        log.info("worker %d: sampler seed %d, GPUs %s", index, seed, gpus or "none")
        runner = TrialRunner(
            self.args.config,
            self.trial_overrides,
            self.space,
            self.study_dir,
            self.study_name,
            self.storage_spec,
            self.pruner,
            self.args.heartbeat,
            gpus,
        )
        Worker(
            self.study(seed),
            runner,
            self.args.n_trials,
            worker_index=index,
            seed=seed,
            timeout=self.args.timeout,
            poll=min(2.0, self.args.heartbeat / 2),
            report=progress_line(self.args.n_trials, self.space.metric),
        ).run()


def _strip_worker_args(argv: list[str]) -> list[str]:
    """The command line minus ``--gpus``/``--workers`` (workers must not spawn workers)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--gpus", "--workers", "--gpus-per-trial"):
            skip = True
            continue
        if arg.startswith(("--gpus=", "--workers=", "--gpus-per-trial=")):
            continue
        out.append(arg)
    return out


def _run_workers(sweep: Sweep, argv: list[str]) -> int:
    """One worker process per slot, each its own process group dying with this one."""
    base = [sys.executable, "-m", "litlab.sweeps.cli", *_strip_worker_args(argv)]
    procs = []
    for i, gpus in enumerate(sweep.slots):
        cmd = [*base, "--worker-index", str(i)] + (["--worker-gpus", gpus] if gpus else [])
        procs.append(start_process(cmd, env={STORAGE_ENV: sweep.storage_spec}))
        log.info("worker %d started (pid %d, GPUs %s)", i, procs[-1].pid, gpus or "none")
    try:
        codes = [p.wait().returncode for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.signal(signal.SIGTERM)
        for p in procs:
            p.stop(grace=15)
        raise
    return max(codes, key=abs)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)
    args, overrides = build_parser().parse_known_args(argv)
    spec = args.storage or "the study journal"
    try:
        sweep = Sweep(args, overrides)
        spec = sweep.storage_spec
        if args.worker_index is not None:
            sweep.run_worker(args.worker_index, args.worker_gpus)
            return 0
        started = time.time()
        sweep.study()  # create it (or check it) before any worker starts
        print(
            f"study {sweep.study_name} ({args.sampler} sampler, {args.pruner} pruner, "
            f"{args.n_trials} trials, {sweep.space.direction} {sweep.space.metric}, "
            f"{len(sweep.slots)} concurrent); storage {masked(spec)}",
            flush=True,
        )
        if len(sweep.slots) > 1:
            code = _run_workers(sweep, argv)
            if code != 0:
                print(f"litlab sweep: a worker exited with code {code}", file=sys.stderr)
                return code if code > 0 else 1
        else:
            sweep.run_worker(0, sweep.slots[0])
        return finish(sweep, started)
    except (DamagedJournal, BadTrialInput, FileNotFoundError, ValueError) as err:
        print(f"litlab sweep: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("litlab sweep: interrupted; run the same command to resume", file=sys.stderr)
        return 130
    except TooManyFailures as err:
        print(f"litlab sweep: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        if not (isinstance(err, StorageLost) or _is_storage_error(err)):
            raise
        print(
            f"litlab sweep: error: lost the study storage {masked(spec)}: "
            f"{_first_line(err)}\nNothing finished is lost: when the storage is back, run the "
            "same command again; the interrupted trial is retried.",
            file=sys.stderr,
        )
        return 1


def _is_storage_error(err: BaseException) -> bool:
    """A database that stopped answering: SQLAlchemy's errors, as Optuna raises or wraps them."""
    if isinstance(err, optuna.exceptions.StorageInternalError):
        return True
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:
        return False
    return isinstance(err, SQLAlchemyError)


def _first_line(err: BaseException) -> str:
    """The driver's own message (Optuna's wrapper says only that a commit failed)."""
    cause = err.__cause__ or err
    text = str(getattr(cause, "orig", None) or cause).strip().splitlines()
    return text[0] if text else type(cause).__name__


if __name__ == "__main__":
    sys.exit(main())
