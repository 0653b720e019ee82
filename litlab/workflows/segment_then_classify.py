"""``litlab workflow segment-then-classify``: the autism paper's segmented arm as three runs.

1. **segmenter**: ``litlab fit --config autism-face-segmenter``: DeepLabV3+ (ResNet-50) trained on
   face masks of ``train/`` and ``valid/`` (a mask folder, or pseudo-masks), best val loss kept;
2. **copy**: ``litlab workflow remove-background``: its mask for every image, the background
   removed, written in the same layout (:mod:`litlab.workflows.remove_background`);
3. **classifier**: ``litlab fit --config autism-seg-resnet50 --data.copy_root=<copy>``: the raw
   arm's ResNet-50 on that copy, same split and seed, tested after fit.

Each step is a child process with its own run folder, ``<output_dir>/<classifier preset>/<step>-
<key>/`` (log, checkpoints, CSV, W&B run, ``result.json``), where the key covers everything that
changes the step's output: its config file, its options, the face folder's files, the mask
folder's files, and the key of the step before it. A step that finished is reused; one that was
killed continues from its ``last.ckpt`` (:mod:`litlab.workflows.steps`). Running the same command
again therefore does nothing but print the result, and changing ``--data.background`` makes a new
copy and classifier but reuses the segmenter.

Options are the classifier's, exactly as ``litlab fit --config autism-seg-resnet50`` takes them.
Those that say which faces and how runs go (:data:`SHARED`) reach the segmenter too;
``--segmenter.<option>`` reaches the segmenter alone (``--segmenter.trainer.max_epochs=5``,
``--segmenter.model.encoder_name=resnet18``, ``--segmenter.data.mask_root=masks/``), and
``--data.background`` / ``--data.blur_sigma`` reach the copy step. Under ``fast_dev_run`` the
segmenter trains one batch of one epoch (and keeps its checkpoint, which ``fast_dev_run`` would
not) and the copy holds one batch of images per folder.
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litlab.datamodules.autism import AutismDataModule
from litlab.datamodules.autism_layout import autism_data_path
from litlab.overrides import Option, option_values, parse_options
from litlab.presets import load_preset, resolve_preset
from litlab.workflows.steps import (
    DIVERGED_EXIT,
    Step,
    StepEnd,
    digest,
    folder_fingerprint,
    run_key,
    run_steps,
)

log = logging.getLogger(__name__)

NAME = "segment-then-classify"
CLASSIFIER_PRESET = "autism-seg-resnet50"
SEGMENTER_PRESET = "autism-face-segmenter"
_VERSION = 1  # bump when a step's command changes what it computes
# The faces and their size: always given to the segmenter as the classifier resolves them.
FACES = (
    "data.root", "data.image_size", "data.synthetic_counts", "data.synthetic_seed",
    "data.synthetic_background_bias", "seed_everything",
)  # fmt: skip
# How runs go: passed on to the segmenter when given on the command line.
SHARED = (
    "data.num_workers", "wandb_mode", "trainer.accelerator", "trainer.devices",
    "trainer.strategy", "trainer.num_nodes", "trainer.precision", "trainer.limit_train_batches",
    "trainer.limit_val_batches", "checkpoint_every_n_steps",
)  # fmt: skip
SEGMENTER_PREFIX = "segmenter."
SET_HERE = ("data.copy_root", "ckpt_path")
# Options of the former all-in-one DataModule, and where each went.
MOVED = {
    "data.segmenter_arch": "--segmenter.model.arch",
    "data.segmenter_encoder": "--segmenter.model.encoder_name",
    "data.segmenter_loss": "--segmenter.model.loss",
    "data.segmenter_lr": "--segmenter.model.lr",
    "data.segmenter_max_epochs": "--segmenter.trainer.max_epochs",
    "data.segmenter_batch_size": "--segmenter.data.batch_size",
    "data.mask_root": "--segmenter.data.mask_root",
    "data.box_method": "--segmenter.data.box_method",
    "data.grabcut_iterations": "--segmenter.data.grabcut_iterations",
    "data.grabcut_size": "--segmenter.data.grabcut_size",
    "data.segmenter_checkpoint": "--segmenter-checkpoint",
}


class StepFailed(RuntimeError):
    """A step ended without a usable result; ``exit_code`` is what the command returns."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def effective_options(config: str, options: list[Option]) -> dict[str, Any]:
    """A preset's values as ``{dotted name: value}`` (``data.X`` for its data's ``init_args``),
    with ``options`` applied on top, as the CLI would resolve them."""
    flat: dict[str, Any] = {}
    for section, values in load_preset(config).items():
        if section in ("data", "model") and isinstance(values, dict):
            values = values.get("init_args") or {}
        if section in ("data", "model", "trainer") and isinstance(values, dict):
            flat.update({f"{section}.{k}": v for k, v in values.items()})
        else:
            flat[section] = values
    return {**flat, **option_values(options)}


def _text(value: Any) -> str:
    """A value as the CLI reads it back (JSON for mappings, lists, booleans and null)."""
    return value if isinstance(value, str) else json.dumps(value)


def split_options(argv: list[str]) -> tuple[list[Option], list[Option]]:
    """``(classifier options, segmenter options)`` of the command line.

    Raises:
        ValueError: An option of the former DataModule (naming its new spelling), or one the
            workflow sets itself.
    """
    classifier, segmenter = [], []
    for option in parse_options(argv):
        if option.name in MOVED:
            raise ValueError(
                f"--{option.name} is now {MOVED[option.name]}: the face segmenter is a run of "
                "its own, with its own options"
            )
        if option.name in SET_HERE:
            raise ValueError(f"--{option.name} is set by the workflow for each step; leave it out")
        if option.name.startswith(SEGMENTER_PREFIX):
            segmenter.append(Option(option.name[len(SEGMENTER_PREFIX) :], option.text))
        else:
            classifier.append(option)
    return classifier, segmenter


@dataclass
class SegmentThenClassify:
    """The workflow's settings and steps (module docstring).

    Args:
        argv: Options after ``litlab workflow segment-then-classify``.
        config: The classifier's preset or YAML.
        segmenter_config: The segmenter's preset or YAML.
        output_dir: Where the steps' folders go (under the classifier preset's name).
        segmenter_checkpoint: A trained face segmenter to use instead of fitting one.
    """

    argv: list[str]
    config: str = CLASSIFIER_PRESET
    segmenter_config: str = SEGMENTER_PRESET
    output_dir: Path = Path("runs")
    segmenter_checkpoint: Path | None = None

    def __post_init__(self) -> None:
        resolve_preset(self.config)  # fail now, with the list of presets, on a typo
        resolve_preset(self.segmenter_config)
        self.classifier_options, self.segmenter_options = split_options(self.argv)
        self.values = effective_options(self.config, self.classifier_options)
        self.segmenter_values = effective_options(self.segmenter_config, self.segmenter_options)
        size = int(self.values.get("data.image_size") or 224)
        if size < 16 or size % 16:
            raise ValueError(
                f"--data.image_size={size} is not a multiple of 16, which the DeepLabV3+ face "
                f"segmenter needs; use e.g. {max(16, round(size / 16) * 16)}"
            )
        if self.segmenter_checkpoint is not None and not self.segmenter_checkpoint.is_file():
            raise FileNotFoundError(
                f"--segmenter-checkpoint {self.segmenter_checkpoint} does not exist; leave it out "
                "to fit the segmenter as the workflow's first step"
            )
        # Absolute: the steps hand these folders to each other on their command lines.
        self.folder = Path(self.output_dir).resolve() / Path(self.config).stem

    # -- what the steps share ---------------------------------------------------------------
    def source_root(self) -> Path:
        """The raw faces: ``--data.root``, or the embedded ones (generated on first use)."""
        defaults = inspect.signature(AutismDataModule.__init__).parameters
        options = {}
        for key in ("root", "synthetic_counts", "synthetic_seed", "synthetic_background_bias"):
            value = self.values.get(f"data.{key}")
            options[key] = defaults[key].default if value is None else value
        return autism_data_path(options).resolve()

    def faces_key(self) -> str:
        """The face folder's files (the embedded faces are fixed by their options instead)."""
        return (
            folder_fingerprint(self.source_root()) if self.values.get("data.root") else "embedded"
        )

    def fast_dev_run(self) -> int:
        """Batches of the classifier's ``fast_dev_run`` (0 when off)."""
        value = option_values(self.classifier_options).get("trainer.fast_dev_run", False)
        return int(value) if value not in (None, False) else 0

    # -- the steps ------------------------------------------------------------------------
    def segmenter_step(self) -> Step:
        """Step 1: ``litlab fit`` of the face segmenter on the classifier's faces."""
        given = {o.name for o in self.classifier_options}
        options = [
            f"--{k}={_text(self.values[k])}" for k in FACES if self.values.get(k) is not None
        ]
        options += [o.arg() for o in self.classifier_options if o.name in SHARED]
        if fast := self.fast_dev_run():
            batch = self.segmenter_values.get("data.batch_size") or 8
            options += [
                "--trainer.max_epochs=1",
                f"--trainer.limit_train_batches={fast}",
                f"--trainer.limit_val_batches={fast}",
                f"--data.limit_per_class={batch}",
            ]
        options += ["--test_after_fit=false", f"--preset_name={Path(self.segmenter_config).stem}"]
        options += [] if "wandb_group" in given else [f"--wandb_group={NAME}"]
        options += [o.arg() for o in self.segmenter_options]
        mask_root = self.segmenter_values.get("data.mask_root")
        masks = folder_fingerprint(Path(mask_root).expanduser()) if mask_root else "pseudo-masks"
        key = run_key(self.segmenter_config, options, _VERSION, self.faces_key(), masks)
        argv = ["fit", "--config", str(resolve_preset(self.segmenter_config)), *options]
        return Step("segmenter", argv, self.folder / f"segmenter-{key}")

    def copy_step(self, checkpoint: Path, segmenter_key: str) -> Step:
        """Step 2: every image's mask predicted, the background removed."""
        values = self.values
        background = values.get("data.background") or "zero"
        sigma = float(values.get("data.blur_sigma") or 8.0)
        limit = int(values.get("data.batch_size") or 16) if self.fast_dev_run() else None
        size = int(values.get("data.image_size") or 224)
        key = digest(_VERSION, segmenter_key, self.faces_key(), size, background,
                     sigma if background == "blur" else "", limit)  # fmt: skip
        run_dir = self.folder / f"copy-{key}"
        argv = [
            "workflow", "remove-background", f"--checkpoint={checkpoint}",
            f"--images={self.source_root()}", f"--out={run_dir}", f"--image-size={size}",
            f"--background={background}", f"--blur-sigma={sigma}",
            f"--batch-size={self.segmenter_values.get('data.batch_size') or 8}",
            f"--accelerator={values.get('trainer.accelerator') or 'auto'}",
        ]  # fmt: skip
        argv += [f"--limit-per-folder={limit}"] if limit else []
        return Step("copy", argv, run_dir)

    def classifier_step(self, copy_dir: Path, copy_key: str) -> Step:
        """Step 3: the classifier's ``litlab fit`` on the copy."""
        given = {o.name for o in self.classifier_options}
        options = [o.arg() for o in self.classifier_options]
        options += [] if "preset_name" in given else [f"--preset_name={Path(self.config).stem}"]
        options += [] if "wandb_group" in given else [f"--wandb_group={NAME}"]
        key = run_key(self.config, options, _VERSION, copy_key)
        argv = ["fit", "--config", str(resolve_preset(self.config)), *options]
        argv.append(f"--data.copy_root={copy_dir}")
        return Step("classifier", argv, self.folder / f"classifier-{key}")

    # -- running ------------------------------------------------------------------------
    def run(self) -> list[StepEnd]:
        """Run (or reuse) the three steps in order; returns their ends.

        Raises:
            StepFailed: A step failed or diverged; nothing after it runs.
            litlab.workflows.steps.BadStepInput: A step stopped on bad input.
        """
        ends = []
        if self.segmenter_checkpoint is not None:
            checkpoint = self.segmenter_checkpoint.resolve()
            st = checkpoint.stat()
            segmenter_key = digest("given", checkpoint, st.st_size, st.st_mtime_ns)
            log.info("segmenter: using the given checkpoint %s", checkpoint)
        else:
            step = self.segmenter_step()
            ends.append(_run(step))
            checkpoint = _kept_checkpoint(ends[-1])
            segmenter_key = step.run_dir.name
        copy = self.copy_step(checkpoint, segmenter_key)
        ends.append(_run(copy))
        ends.append(_run(self.classifier_step(copy.run_dir, copy.run_dir.name)))
        return ends


def _run(step: Step) -> StepEnd:
    (end,) = run_steps([step])
    if end.ok:
        return end
    message = end.describe()
    if end.status == "diverged" or (end.outcome and end.outcome.returncode == DIVERGED_EXIT):
        raise StepFailed(f"{message}\nchange its options (e.g. a lower learning rate)", 3)
    raise StepFailed(f"{message}\nrun the same command again to continue from where it stopped")


def _kept_checkpoint(end: StepEnd) -> Path:
    """The segmenter run's kept (best val loss) checkpoint."""
    path = (end.result or {}).get("best_model_path")
    checkpoint = Path(path) if path else end.step.run_dir / "checkpoints" / "best.ckpt"
    if not checkpoint.is_file():
        raise StepFailed(
            f"the segmenter run {end.step.run_dir} kept no checkpoint (looked for {checkpoint}); "
            "give it at least one validated epoch"
        )
    return checkpoint
