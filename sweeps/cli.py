"""``litlab sweep``: Optuna random search / Bayesian optimisation over a preset.

Examples::

    litlab sweep --config liver-deeplabv3plus --sampler tpe --n-trials 20 --trainer.max_epochs=30
    litlab sweep --config liver-deeplabv3plus --gpus 0,1,2,3 --storage postgresql://u:p@db/optuna

Every option not listed below (``--trainer.max_epochs=3``, ``--data.root=/data/lits`` ...) is
passed to every trial as ``litlab fit`` would take it. ``--n-trials`` caps the whole study,
across all workers and across re-runs: running the same command again resumes the study.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
from litlab.sweeps.objective import Objective, SurplusTrial, TrialFailed
from litlab.sweeps.outputs import parse_overrides, write_best_yaml, write_plots, write_trials_csv
from litlab.sweeps.space import load_space
from litlab.sweeps.study import (
    PRUNERS,
    SAMPLERS,
    SURPLUS_ATTR,
    counted_trials,
    is_url,
    make_pruner,
    make_sampler,
    make_storage,
    requeue_interrupted,
)
from optuna.trial import FrozenTrial, TrialState

from litlab.presets import load_preset, resolve_preset

log = logging.getLogger(__name__)


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
        "--n-trials",
        type=int,
        default=20,
        help="total trials in the study, across workers and re-runs",
    )
    p.add_argument(
        "--pruner", choices=PRUNERS, default="median", help="stop unpromising trials early"
    )
    p.add_argument(
        "--storage",
        default=None,
        help="journal file path (default runs/sweeps/<study>.journal) or DB URL",
    )
    p.add_argument("--study-name", default=None, help="default: <preset>-<sampler>")
    p.add_argument(
        "--gpus", default=None, help="comma-separated GPU ids: one worker process per GPU"
    )
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes when no --gpus are given"
    )
    p.add_argument(
        "--timeout", type=float, default=None, help="stop starting new trials after T seconds"
    )
    p.add_argument("--seed", type=int, default=0, help="sampler seed (worker i uses seed + i)")
    p.add_argument("--space", default=None, help="search-space YAML (default: <preset>.sweep.yaml)")
    p.add_argument("--output-dir", default="runs/sweeps", help="where study folders go")
    p.add_argument(
        "--no-test-best", action="store_true", help="skip testing the best trial's checkpoint"
    )
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
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
        self.args = args
        self.overrides = overrides
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
        self.max_epochs = _max_epochs(args.config, parsed)
        if args.n_trials < 1:
            raise ValueError(f"--n-trials must be >= 1, got {args.n_trials}")

    def study(self, worker: int = 0) -> optuna.Study:
        study = optuna.create_study(
            study_name=self.study_name,
            storage=make_storage(self.storage_spec),
            sampler=make_sampler(self.args.sampler, self.args.seed + worker, self.args.n_trials),
            pruner=make_pruner(self.args.pruner, self.max_epochs),
            direction=self.space.direction,
            load_if_exists=True,
        )
        if study.direction.name.lower() != self.space.direction:
            raise ValueError(
                f"study {self.study_name!r} in {self.storage_spec} was created to {study.direction.name.lower()}; "
                f"this space says {self.space.direction}: use another --study-name"
            )
        study.set_user_attr("metric", self.space.metric)
        study.set_user_attr("config", self.args.config)
        return study

    def run_worker(self, worker: int = 0) -> None:
        study = self.study(worker)
        objective = Objective(
            self.args.config,
            self.overrides,
            self.space,
            self.study_dir,
            self.study_name,
            self.args.n_trials,
        )
        n = self.args.n_trials

        def stop_at_cap(study: optuna.Study, trial: FrozenTrial) -> None:
            failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
            if counted_trials(study) >= n or failed > n:
                study.stop()

        if counted_trials(study) >= n:
            log.info(
                "study %s already has %d trials; nothing to run",
                self.study_name,
                counted_trials(study),
            )
            return
        study.optimize(
            objective,
            timeout=self.args.timeout,
            catch=(SurplusTrial, TrialFailed),
            callbacks=[stop_at_cap, progress_line(n, self.space.metric)],
            gc_after_trial=True,
        )


def progress_line(n_trials: int, metric: str):
    """A study callback printing one line per finished trial."""

    def show(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.user_attrs.get(SURPLUS_ATTR):
            return
        try:
            best = study.best_trial
            best_text = f"best {best.value:.4f} (#{best.number})"
        except ValueError:
            best_text = "no complete trial yet"
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        params = " ".join(f"{k.split('.')[-1]}={_fmt(v)}" for k, v in trial.params.items())
        print(
            f"[trial {trial.number} | {counted_trials(study)}/{n_trials}] {trial.state.name.lower():8s} "
            f"{metric}={value}  {best_text}  epochs={trial.user_attrs.get('epochs', '?')} "
            f"{trial.user_attrs.get('duration_s', 0):.0f}s  {params}",
            flush=True,
        )

    return show


def _fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _spawn_workers(argv: list[str], devices: list[str | None]) -> int:
    """Start one ``litlab.sweeps.cli`` worker per device and wait; returns the worst exit code."""
    procs = []
    for i, device in enumerate(devices):
        env = dict(os.environ)
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        cmd = [sys.executable, "-m", "litlab.sweeps.cli", *argv, "--worker-index", str(i)]
        procs.append(subprocess.Popen(cmd, env=env))
        log.info("worker %d started (pid %d, device %s)", i, procs[-1].pid, device or "cpu")
    return max(p.wait() for p in procs)


def _strip_worker_args(argv: list[str]) -> list[str]:
    """The command line minus ``--gpus``/``--workers`` (workers must not spawn workers)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--gpus", "--workers"):
            skip = True
            continue
        if arg.startswith(("--gpus=", "--workers=")):
            continue
        out.append(arg)
    return out


def finish(sweep: Sweep, started: float) -> int:
    """Write the study's outputs and print where they are."""
    study = sweep.study()
    sweep.study_dir.mkdir(parents=True, exist_ok=True)
    trials_csv = write_trials_csv(sweep.study_dir / "trials.csv", study)
    plots = write_plots(sweep.study_dir, study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    print(
        f"\nstudy {sweep.study_name}: {len(complete)} complete, {len(pruned)} pruned, {time.time() - started:.0f}s"
    )
    if not complete:
        print("no trial completed; see the log above")
        return 1
    best = study.best_trial
    best_yaml = write_best_yaml(
        sweep.study_dir / "best_params.yaml", sweep.args.config, sweep.overrides, study
    )
    print(
        f"best trial #{best.number}: {sweep.space.metric}={best.value:.4f} after {best.user_attrs.get('epochs')} epochs"
    )
    for key, value in best.params.items():
        print(f"  {key} = {_fmt(value)}")
    epochs = sum(int(t.user_attrs.get("epochs", 0)) for t in complete + pruned)
    print(f"epochs trained in all: {epochs}")
    if not sweep.args.no_test_best and best.user_attrs.get("best_checkpoint"):
        _test_best(sweep, best_yaml, best.user_attrs["best_checkpoint"])
    print(f"\nbest config:  {best_yaml}   (litlab fit --config {best_yaml})")
    print(f"trials table: {trials_csv}")
    for plot in plots:
        print(f"plot:         {plot}")
    print(f"trial runs:   {sweep.study_dir}/trial-*/ (W&B group {sweep.study_name!r})")
    return 0


def _test_best(sweep: Sweep, best_yaml: Path, ckpt: str) -> None:
    from litlab.cli import run_cli

    print(f"\ntesting the best trial's checkpoint on the held-out test split: {ckpt}")
    cli = run_cli(
        [
            "test",
            "--config",
            str(best_yaml),
            f"--ckpt_path={ckpt}",
            f"--trainer.default_root_dir={sweep.study_dir / 'best-test'}",
            "--trainer.enable_progress_bar=false",
            "--wandb_mode=disabled",
        ]
    )
    del cli


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args, overrides = build_parser().parse_known_args(argv)
    try:
        sweep = Sweep(args, overrides)
    except (FileNotFoundError, ValueError) as err:
        print(f"litlab sweep: error: {err}", file=sys.stderr)
        return 2
    if args.worker_index is not None:
        sweep.run_worker(args.worker_index)
        return 0
    started = time.time()
    study = sweep.study()
    if not is_url(sweep.storage_spec):
        requeue_interrupted(study)
    print(
        f"study {sweep.study_name} ({args.sampler} sampler, {args.pruner} pruner, {args.n_trials} trials, "
        f"{sweep.space.direction} {sweep.space.metric}); storage {sweep.storage_spec}",
        flush=True,
    )
    devices: list[str | None]
    devices = (
        [g.strip() for g in args.gpus.split(",") if g.strip()]
        if args.gpus
        else [None] * args.workers
    )
    if len(devices) > 1:
        code = _spawn_workers(_strip_worker_args(argv), devices)
        if code != 0:
            print(f"litlab sweep: a worker exited with code {code}", file=sys.stderr)
    else:
        if devices[0] is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = devices[0]
        sweep.run_worker(0)
    return finish(sweep, started)


if __name__ == "__main__":
    sys.exit(main())
