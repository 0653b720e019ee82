"""Search spaces, overrides, the trial cap, pruner specs and the study's output files."""

from __future__ import annotations

import csv

import optuna
import pytest
from litlab.sweeps.outputs import best_config, parse_overrides, write_plots, write_trials_csv
from litlab.sweeps.space import SearchSpace, load_space, override_args
from litlab.sweeps.study import make_pruner, over_cap, pruner_spec, sampler_seed
from optuna.trial import TrialState


def test_space_parsing_and_errors(tmp_path):
    space = load_space("liver-deeplabv3plus")
    assert space.metric == "val/dice_liver" and space.direction == "maximize"
    assert {"model.lr", "data.batch_size", "model.optimizer", "model.loss"} <= set(space.params)
    assert "model.lr" not in space.without({"model.lr"}).params
    with pytest.raises(ValueError, match="low < high"):
        SearchSpace("val/loss", "minimize", {"model.lr": {"type": "float", "low": 1, "high": 0}})
    with pytest.raises(ValueError, match="direction"):
        SearchSpace("val/loss", "down", {})
    with pytest.raises(FileNotFoundError, match="no search space"):
        load_space("fer2013-resnet50", str(tmp_path / "missing.yaml"))


def test_overrides_round_trip_into_config():
    assert override_args({"model.lr": 0.001, "data.augment": False}) == [
        "--model.lr=0.001",
        "--data.augment=false",
    ]
    parsed = parse_overrides(["--trainer.max_epochs=3", "--data.root", "/d"])
    assert parsed == {"trainer.max_epochs": 3, "data.root": "/d"}
    merged = best_config("liver-deeplabv3plus", ["--trainer.max_epochs=3"], {"model.lr": 0.005})
    assert merged["model"]["init_args"]["lr"] == 0.005
    assert merged["trainer"]["max_epochs"] == 3
    with pytest.raises(ValueError, match="cannot read override"):
        parse_overrides(["positional"])


def test_over_cap_counts_earlier_live_trials():
    study = optuna.create_study()
    trials = [study.ask() for _ in range(3)]
    assert not over_cap(study, trials[1], n_trials=2)
    assert over_cap(study, trials[2], n_trials=2)
    study.tell(trials[0], state=TrialState.FAIL)  # failed trials free their slot
    assert not over_cap(study, trials[2], n_trials=2)


def test_pruner_specs_build_and_unknown_names_fail():
    assert isinstance(make_pruner(pruner_spec("median", 5)), optuna.pruners.MedianPruner)
    hyperband = make_pruner(pruner_spec("hyperband", 7))
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner(pruner_spec("none", 5)), optuna.pruners.NopPruner)
    custom = pruner_spec("optuna.pruners:ThresholdPruner", 5)
    assert custom["class_path"] == "optuna.pruners.ThresholdPruner"
    with pytest.raises(ValueError, match="unknown pruner 'medain'"):
        pruner_spec("medain", 5)
    with pytest.raises(ValueError, match="cannot import pruner"):
        make_pruner(pruner_spec("no_such_module.Pruner", 5))


def test_each_start_seeds_its_sampler_differently():
    seeds = {sampler_seed(0, 0) for _ in range(5)} | {sampler_seed(0, 1)}
    assert len(seeds) == 6  # a resumed or second command never replays a sequence


def test_trials_csv_keeps_metrics_beside_the_objective_and_plots_note(tmp_path):
    study = optuna.create_study(direction="maximize")
    for i in range(3):
        trial = study.ask()
        trial.suggest_float("model.lr", 1e-4, 1e-2, log=True)
        for key, value in {
            "val/dice_liver": 0.1 * i,
            "val/miou": 0.5,
            "val/pixel_acc": 0.9,
        }.items():
            trial.set_user_attr(key, value)
        study.tell(trial, 0.1 * i)
    rows = list(csv.DictReader(write_trials_csv(tmp_path / "trials.csv", study).open()))
    assert [float(r["value"]) for r in rows] == [0.0, 0.1, 0.2]
    assert {"val/dice_liver", "val/miou", "val/pixel_acc", "model.lr"} <= set(rows[0])
    plots, notes = write_plots(tmp_path, study)
    assert "param_importances" not in {p.stem for p in plots}
    assert notes == ["no parameter-importance plot: it needs 4 complete trials, the study has 3"]
    trial = study.ask()
    trial.suggest_float("model.lr", 1e-4, 1e-2, log=True)
    study.tell(trial, 0.3)
    plots, notes = write_plots(tmp_path, study)
    assert "param_importances" in {p.stem for p in plots} and not notes
