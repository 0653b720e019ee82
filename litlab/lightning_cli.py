"""The training CLI: LightningCLI with run folders, loggers, checkpoints and test-after-fit.

Imported only by the commands that build a Trainer (``fit``, ``validate``, ``test``,
``predict``): importing it loads torch and Lightning. :mod:`litlab.cli` dispatches here.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import Logger, WandbLogger

from litlab.callbacks.channels_last import ChannelsLast
from litlab.callbacks.curves_writer import CurvesWriter
from litlab.callbacks.divergence import DivergenceStop, TrainingDiverged
from litlab.callbacks.epoch_lines import EpochLines
from litlab.callbacks.epoch_seeding import EpochSeeding
from litlab.callbacks.run_checkpoint import check_resumable, run_checkpoints
from litlab.callbacks.run_result import ValidationHistory, build_result, save_result
from litlab.cli import resolve_config_args
from litlab.contract import (
    ContractInstantiator,
    check_contract,
    checkpoint_model_args,
    forced_model_args,
    link_contract,
)
from litlab.csv_logger import RunCSVLogger
from litlab.errors import BadInputError
from litlab.failures import RUN_DIR_ATTR
from litlab.metric_table import print_metric_table
from litlab.predict import add_predict_arguments, before_predict, prediction_writer, summary_lines
from litlab.resume import Resume, wandb_run_id, with_run_config
from litlab.trainer import Trainer

log = logging.getLogger(__name__)

# run_cli passes the resolved command line as `args` while sys.argv still holds the original
# (DDP relaunches ranks from sys.argv), which LightningCLI warns about; that is intended here.
warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")

RUN_DIR_ENV = "LITLAB_RUN_DIR"  # shared by DDP ranks, which re-run the command line
WANDB_CONFIG_ENV = "LITLAB_WANDB_CONFIG"  # JSON merged into the W&B run's config


def wandb_mode(requested: str) -> str:
    """``auto`` means online when ``WANDB_API_KEY`` is set, offline otherwise."""
    if requested not in ("auto", "online", "offline", "disabled"):
        raise ValueError(f"wandb_mode must be auto, online, offline or disabled, got {requested!r}")
    env = os.environ.get("WANDB_MODE")
    if requested == "auto":
        return env or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    return requested


def build_loggers(
    run_dir: Path,
    preset: str,
    mode: str,
    group: str | None = None,
    resume_step: int | None = None,
) -> list[Logger]:
    """CSV logs always; a W&B run (offline unless online is asked for) unless disabled.

    The W&B run id is kept in the run folder, so a run resumed there logs to the same W&B run;
    ``resume_step`` (the checkpoint's global step) makes the CSV continue (``RunCSVLogger``).
    """
    loggers: list[Logger] = [RunCSVLogger(save_dir=str(run_dir), resume_step=resume_step)]
    if mode != "disabled":
        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(
            WandbLogger(
                save_dir=str(run_dir),
                project=os.environ.get("WANDB_PROJECT", "litlab"),
                group=group or preset,
                name=f"{preset}-{run_dir.name}",
                id=wandb_run_id(run_dir),
                resume="allow",
                offline=mode == "offline",
                mode=mode,
                tags=[preset],
                config=json.loads(os.environ.get(WANDB_CONFIG_ENV) or "{}"),  # e.g. sweep trial
            )
        )
    return loggers


def default_precision() -> str:
    """``bf16-mixed`` where CUDA runs bfloat16 (Ampere and later), else ``32-true``.

    bf16 autocast keeps fp32's range (no loss scaling) and roughly doubles convolution
    throughput on tensor cores; on a CPU, fp32 stays the default (bf16 autocast is slower there).
    """
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


class LitlabCLI(LightningCLI):
    """LightningCLI that adds run folders, loggers, checkpointing and a test after fit.

    Every run writes to ``<output_dir>/<preset>/<YYYYmmdd-HHMMSS>/``: ``checkpoints/best.ckpt``
    and ``last.ckpt``, ``csv/metrics.csv``, ``wandb/`` and ``images/``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.test_results: dict[str, float] = {}
        self.resume: Resume | None = None  # set when --ckpt_path names a checkpoint file
        self.forced_model_args: dict[str, Any] = {}  # contract arguments the user set
        kwargs.setdefault("trainer_class", Trainer)  # `limit_*_batches=1` is one batch
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("auto_configure_optimizers", False)  # modules own their optimisers
        super().__init__(pl.LightningModule, pl.LightningDataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--output_dir", type=str, default="runs", help="Root folder for run outputs"
        )
        # GPU-ready defaults, resolved here so --print_config shows them; any option overrides.
        parser.set_defaults({"trainer.precision": default_precision()})
        parser.add_argument(
            "--channels_last",
            type=bool,
            default=torch.cuda.is_available(),
            help="Model weights in channels-last order (fast bf16 convolutions on GPUs); "
            "default: on when CUDA is present",
        )
        parser.add_argument(
            "--preset_name", type=str, default="", help="Run-folder name (defaults to the config's)"
        )
        parser.add_argument(
            "--wandb_mode",
            type=str,
            default="auto",
            help="auto (online iff WANDB_API_KEY), online, offline, disabled",
        )
        parser.add_argument(
            "--wandb_group", type=str, default="", help="W&B group (default: the preset)"
        )
        parser.add_argument(
            "--test_after_fit", type=bool, default=True, help="Test the best checkpoint after fit"
        )
        parser.add_argument(
            "--checkpoint_every_n_steps",
            type=int,
            default=0,
            help="Also write last.ckpt every N training steps (long epochs); 0: at epoch ends only",
        )
        parser.add_argument(
            "--best_checkpoint_full_state",
            type=bool,
            default=False,
            help="best.ckpt keeps the optimiser and loop state too (resumable); default: weights "
            "and hyperparameters only. last.ckpt is always complete",
        )
        link_contract(parser)  # num_classes, in_chans, class_names: from the data to the model

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        # What the user set on the model: a contradiction of the data, told from a default.
        self.forced_model_args = forced_model_args(parser, args) if isinstance(args, list) else {}

    def _prepare_subcommand_parser(
        self, klass: type, subcommand: str, **kwargs: Any
    ) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "predict":
            add_predict_arguments(parser)  # --predict_from
        return parser

    def _add_instantiators(self) -> None:
        super()._add_instantiators()
        self.parser.add_instantiator(
            ContractInstantiator(cli=self, key="model"), pl.LightningModule, subclasses=True
        )

    def after_instantiate_classes(self) -> None:
        ckpt = self.config[self.subcommand].get("ckpt_path") if self.subcommand else None
        check_contract(self.datamodule, self.forced_model_args, checkpoint_model_args(ckpt), ckpt)

    # -- helpers -------------------------------------------------------------------------
    def _cfg(self, name: str, default: Any = None) -> Any:
        return self._get(self.config, name, default)

    def _preset(self) -> str:
        if self._cfg("preset_name"):
            return self._cfg("preset_name")
        if self.resume is not None and self.resume.run_dir is not None:
            return self.resume.run_dir.parent.name  # the checkpoint's runs/<preset>/<time>
        configs = self._cfg("config") or []
        return Path(str(configs[0])).stem if configs else "custom"

    def _resumes_in(self, run_dir: Path | None) -> bool:
        """Whether this is a fit continuing the checkpoint's own run folder ``run_dir``."""
        own = self.resume.run_dir if self.resume is not None else None
        return (
            self.subcommand == "fit"
            and own is not None
            and run_dir is not None
            and Path(run_dir).resolve() == own
        )

    def _parse_ckpt_path(self) -> None:
        """Refuse options that contradict the checkpoint (``litlab.resume``), then load its model."""
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        self.resume = Resume.of(config.get("ckpt_path")) if config is not None else None
        if self.resume is not None:
            self.resume.check_config(config, subcommand)
            if subcommand == "fit":
                check_resumable(self.resume.ckpt_path, self.resume.checkpoint)
        super()._parse_ckpt_path()

    def _run_dir(self) -> Path:
        if os.environ.get(RUN_DIR_ENV):
            return Path(os.environ[RUN_DIR_ENV])
        if self.subcommand == "fit" and self.resume is not None and self.resume.run_dir:
            os.environ[RUN_DIR_ENV] = str(self.resume.run_dir)  # resume in place
            return self.resume.run_dir
        run_dir = Path(self._cfg("output_dir")) / self._preset() / time.strftime("%Y%m%d-%H%M%S")
        while run_dir.exists():  # two runs in the same second: keep both
            run_dir = run_dir.with_name(run_dir.name + "-1")
        os.environ[RUN_DIR_ENV] = str(run_dir)
        return run_dir

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer_cfg = self._get(self.config_init, "trainer", default={})
        if trainer_cfg.get("default_root_dir"):
            run_dir = Path(trainer_cfg["default_root_dir"])
            make_run_folder(run_dir, "--trainer.default_root_dir")
        else:
            run_dir = self._run_dir()
            kwargs["default_root_dir"] = str(run_dir)
            make_run_folder(run_dir, "--output_dir")
        callbacks = list(trainer_cfg.get("callbacks") or [])
        every = self._cfg("checkpoint_every_n_steps") or 0
        if trainer_cfg.get("logger") in (None, True):
            mode = wandb_mode(self._cfg("wandb_mode"))
            resume_step = self.resume.global_step if self._resumes_in(run_dir) else None
            kwargs["logger"] = build_loggers(
                run_dir, self._preset(), mode, self._cfg("wandb_group") or None, resume_step
            )
            callbacks.append(LearningRateMonitor(logging_interval="epoch"))
            if self.subcommand == "fit":
                callbacks.append(CurvesWriter())  # images/curves.png from csv/metrics.csv
        if trainer_cfg.get("enable_progress_bar") is None and not sys.stdout.isatty():
            kwargs["enable_progress_bar"] = False  # a bar in a log file is carriage-return noise
            callbacks.append(EpochLines())
        if trainer_cfg.get("enable_checkpointing") is not False and not any(
            isinstance(c, ModelCheckpoint) for c in callbacks
        ):
            monitor = getattr(self.model, "MONITOR", "val/loss")
            mode = getattr(self.model, "MONITOR_MODE", "min")
            full = bool(self._cfg("best_checkpoint_full_state"))
            callbacks += run_checkpoints(run_dir / "checkpoints", monitor, mode, every, full)
        if self.subcommand == "fit":
            callbacks.append(DivergenceStop(check_weights_every_n_steps=every))
            seed = self._cfg("seed_everything")
            if seed is not False and seed is not None:  # every epoch repeatable across a resume
                callbacks.append(EpochSeeding(int(seed)))
        if self.subcommand == "predict":
            callbacks.append(prediction_writer(run_dir))  # <run>/predictions/
        if self._cfg("channels_last"):
            callbacks.append(ChannelsLast())
        callbacks.append(ValidationHistory())  # read by write_result
        kwargs["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except TrainingDiverged as err:
            write_result(self.trainer, "diverged", error=str(err))
            raise

    def before_fit(self) -> None:
        if self.resume is not None and self._resumes_in(Path(self.trainer.default_root_dir)):
            self.resume.log_changes(self.config[self.subcommand])

    def after_fit(self) -> None:
        trainer = self.trainer
        if not self._cfg("test_after_fit") or trainer.interrupted:
            write_result(trainer, "failed" if trainer.interrupted else "finished")
            return
        ckpt = trainer.checkpoint_callback
        best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
        if best is None and not trainer.fast_dev_run:
            log.warning("no best checkpoint was saved; testing the final weights")
        results = trainer.test(
            self.model, datamodule=self.datamodule, ckpt_path=best, verbose=False
        )
        self.test_results = {k: float(v) for k, v in (results[0] if results else {}).items()}
        if trainer.is_global_zero:
            print_summary(self.test_results, Path(trainer.default_root_dir), best)
        write_result(trainer, test_metrics=self.test_results)

    def before_predict(self) -> None:
        config = self.config_init[self.subcommand]
        before_predict(self.datamodule, self._cfg("predict_from"), self._cfg("ckpt_path"), config)

    def after_predict(self) -> None:
        if self.trainer.is_global_zero:
            print("\n".join(summary_lines(self.trainer)))

    def after_test(self) -> None:
        self.test_results = {
            k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("test/")
        }
        if self.trainer.is_global_zero:  # Lightning has printed the metrics table already
            print_summary({}, Path(self.trainer.default_root_dir), None)


def write_result(
    trainer: pl.Trainer,
    status: str = "finished",
    test_metrics: dict[str, float] | None = None,
    error: str | None = None,
) -> Path | None:
    """Write ``<run>/result.json`` (rank 0): how the fit ended and its kept epoch's metrics.

    A ``finished`` fit whose kept monitored value or val loss is not finite is written as
    ``diverged``. Orchestrators read it with ``litlab.runs.read_result``.
    """
    if not trainer.is_global_zero:
        return None
    if status == "failed" and error is None and trainer.interrupted:
        error = "interrupted"
    result = build_result(trainer, status, test_metrics, error)
    return save_result(Path(trainer.default_root_dir), result)


def print_summary(metrics: dict[str, float], run_dir: Path, best: str | None) -> None:
    """The test metrics as a table, and where the run's files are."""
    print_metric_table(metrics)
    print(f"\nrun folder:      {run_dir}")
    if best:
        print(f"best checkpoint: {best}")
    folder = run_dir / "images"
    images = [*folder.glob("curves.png"), *sorted(folder.glob("test_*.png"))]
    for image in images:
        print(f"figure:          {image}")


def make_run_folder(run_dir: Path, option: str) -> None:
    """Create the run folder and check it takes files, before any output is written there.

    Raises:
        BadInputError: It cannot be created or written (read-only, no space ...): names the
            folder, the reason and ``option``.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise BadInputError(
            f"cannot write the run folder {run_dir}: {err.strerror or err}; pass {option} "
            "with a writable folder (runs go under ./runs by default)"
        ) from err


def run_cli(argv: list[str], extra_callbacks: list[pl.Callback] | None = None) -> LitlabCLI:
    """Run ``litlab <subcommand> ...`` in this process and return the CLI object.

    Args:
        argv: The command line after ``litlab``.
        extra_callbacks: Callbacks added to the Trainer on top of the config's (sweeps use this).
    """
    owns_env = RUN_DIR_ENV not in os.environ
    defaults = {"callbacks": list(extra_callbacks)} if extra_callbacks else None
    try:
        return LitlabCLI(args=resolve_config_args(with_run_config(argv)), trainer_defaults=defaults)
    except Exception as err:
        if os.environ.get(RUN_DIR_ENV):  # where the failure's traceback is logged
            setattr(err, RUN_DIR_ATTR, os.environ[RUN_DIR_ENV])
        raise
    finally:
        if owns_env:
            os.environ.pop(RUN_DIR_ENV, None)


def fit_and_test(args: list[str]) -> dict[str, float]:
    """``litlab fit <args>`` then test of the best checkpoint; returns the test metrics."""
    return run_cli(["fit", *args]).test_results
