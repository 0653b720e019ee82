"""What a finished sweep leaves behind: best-params YAML, trials.csv, plots."""

from __future__ import annotations

import csv
import io
import logging
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import yaml  # noqa: E402
from litlab.datamodules.cache import write_atomically  # noqa: E402
from litlab.sweeps.study import SURPLUS_ATTR  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from litlab.overrides import parse_overrides  # noqa: E402
from litlab.presets import load_preset  # noqa: E402

log = logging.getLogger(__name__)

MIN_TRIALS_FOR_IMPORTANCE = 4  # fewer finished trials give a meaningless importance ranking
_SECTION_ROOTS = ("model", "data")  # subclass-mode sections: values live under init_args


def _set_dotted(config: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if parts[0] in _SECTION_ROOTS and parts[1] not in ("class_path", "init_args"):
        parts = [parts[0], "init_args", *parts[1:]]
    node = config
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def best_config(config: str, overrides: list[str], params: dict[str, Any]) -> dict:
    """The preset with the user's overrides and the best parameters merged in: a full config."""
    merged = load_preset(config)
    for key, value in {**params, **parse_overrides(overrides)}.items():
        _set_dotted(merged, key, value)
    return merged


def _write_text(path: Path, text: str) -> Path:
    """Written via a temporary file and a rename: two commands finishing together never mix."""
    return write_atomically(path, lambda tmp: tmp.write_text(text))


def write_best_yaml(path: Path, config: str, overrides: list[str], study: optuna.Study) -> Path:
    best = study.best_trial
    merged = best_config(config, overrides, best.params)
    header = (
        f"# Best trial {best.number} of study {study.study_name!r}: "
        f"{study.user_attrs.get('metric', 'objective')}={best.value:.6g}\n"
        f"# Train it with: litlab fit --config {path}\n"
    )
    return _write_text(path, header + yaml.safe_dump(merged, sort_keys=False))


def write_trials_csv(path: Path, study: optuna.Study) -> Path:
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS_ATTR)]
    param_names = sorted({k for t in trials for k in t.params})
    attr_names = sorted({k for t in trials for k in t.user_attrs})
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["number", "state", "value", *param_names, *attr_names])
    for t in trials:
        writer.writerow(
            [t.number, t.state.name, "" if t.value is None else t.value]
            + [t.params.get(k, "") for k in param_names]
            + [t.user_attrs.get(k, "") for k in attr_names]
        )
    return _write_text(path, out.getvalue())


def write_plots(out_dir: Path, study: optuna.Study) -> tuple[list[Path], list[str]]:
    """Optimisation history, parameter importances, parallel coordinates, as PNGs.

    Returns:
        The written plots, and one-line notes on plots skipped.
    """
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    plots = {"optimization_history": ovm.plot_optimization_history}
    notes = []
    if len(complete) >= 2:
        plots["parallel_coordinate"] = ovm.plot_parallel_coordinate
    if len(complete) >= MIN_TRIALS_FOR_IMPORTANCE:
        plots["param_importances"] = ovm.plot_param_importances
    else:
        notes.append(
            f"no parameter-importance plot: it needs {MIN_TRIALS_FOR_IMPORTANCE} complete "
            f"trials, the study has {len(complete)}"
        )
    if any(t.intermediate_values for t in study.trials):
        plots["intermediate_values"] = ovm.plot_intermediate_values
    written = []
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():  # the matplotlib backend is "experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                ax = plot(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).get_figure()
            fig.set_size_inches(9, 5.5)
            fig.tight_layout()
            path = write_atomically(out_dir / f"{name}.png", partial(fig.savefig, dpi=110))
            plt.close(fig)
            written.append(path)
        except (ValueError, RuntimeError) as err:
            log.warning("could not draw %s: %s", name, err)
    return written, notes
