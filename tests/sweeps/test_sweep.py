"""litlab sweep end to end on tiny liver phantoms: pruning, resuming, parallel workers, best YAML."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
import pytest
import yaml
from litlab.sweeps import cli as sweep_cli
from litlab.sweeps.outputs import best_config, parse_overrides
from litlab.sweeps.space import SearchSpace, load_space, override_args
from litlab.sweeps.study import counted_trials, make_storage, over_cap, requeue_interrupted
from optuna.trial import TrialState

from litlab.cli import run_cli

TINY = [
    "--data.image_size=32",
    "--data.synthetic_patients=6",
    "--data.synthetic_slices=4",
    "--data.batch_size=4",
    "--data.num_workers=0",
    "--model.encoder_name=resnet18",
    "--model.num_overlays=1",
    "--trainer.max_epochs=2",
    "--trainer.limit_train_batches=1",
    "--trainer.limit_val_batches=1",
    "--trainer.accelerator=cpu",
    "--wandb_mode=disabled",
]


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "metric": "val/miou",
                "direction": "maximize",
                "params": {"model.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
            }
        )
    )
    return path


def _argv(tmp_path: Path, space_file: Path, n_trials: int, *extra: str) -> list[str]:
    return [
        "--config",
        "liver-deeplabv3plus",
        "--sampler",
        "random",
        "--n-trials",
        str(n_trials),
        "--study-name",
        "tiny",
        "--space",
        str(space_file),
        "--output-dir",
        str(tmp_path / "sweeps"),
        "--no-test-best",
        *extra,
        *TINY,
    ]


class PruneTrialOne(optuna.pruners.BasePruner):
    """Deterministic: prunes trial #1 at its first report and nothing else."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number == 1


def _load(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(
        study_name="tiny", storage=make_storage(str(tmp_path / "sweeps" / "tiny.journal"))
    )


def test_sweep_prunes_resumes_and_writes_outputs(tmp_path, space_file, monkeypatch):
    monkeypatch.setattr(sweep_cli, "make_pruner", lambda name, max_epochs: PruneTrialOne())
    assert sweep_cli.main(_argv(tmp_path, space_file, 3)) == 0
    study = _load(tmp_path)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["epochs"] == 1  # pruned after its first validation
    assert study.trials[0].user_attrs["epochs"] == 2
    out = tmp_path / "sweeps" / "tiny"
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["COMPLETE", "PRUNED", "COMPLETE"]
    assert (out / "optimization_history.png").stat().st_size > 0
    assert (out / "trial-0000" / "checkpoints" / "best.ckpt").is_file()

    # The same command with a larger cap resumes the study: only the missing trial runs.
    assert sweep_cli.main(_argv(tmp_path, space_file, 4)) == 0
    study = _load(tmp_path)
    assert len(study.trials) == 4 and counted_trials(study) == 4
    # Re-running at the cap runs nothing.
    assert sweep_cli.main(_argv(tmp_path, space_file, 4)) == 0
    assert len(_load(tmp_path).trials) == 4

    # The best-params YAML is a config `litlab fit` accepts as-is, with the best lr in it.
    best_yaml = out / "best_params.yaml"
    config = yaml.safe_load(best_yaml.read_text())
    assert config["model"]["init_args"]["lr"] == pytest.approx(study.best_trial.params["model.lr"])
    cli = run_cli(
        [
            "fit",
            "--config",
            str(best_yaml),
            "--trainer.fast_dev_run=1",
            f"--trainer.default_root_dir={tmp_path / 'refit'}",
        ]
    )
    assert cli.model.hparams.lr == pytest.approx(study.best_trial.params["model.lr"])
    assert cli.model.hparams.encoder_name == "resnet18"  # user overrides travel too


@pytest.mark.slow
def test_two_workers_share_one_study_without_loss_or_duplicates(tmp_path, space_file):
    assert sweep_cli.main(_argv(tmp_path, space_file, 4, "--workers", "2", "--pruner", "none")) == 0
    study = _load(tmp_path)
    counted = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == 4
    assert all(t.state == TrialState.COMPLETE for t in counted)
    assert len({t.number for t in counted}) == 4
    run_dirs = {t.user_attrs["run_dir"] for t in counted}
    assert len(run_dirs) == 4 and all(
        Path(d, "checkpoints", "best.ckpt").is_file() for d in run_dirs
    )
    surplus = [t for t in study.trials if t.user_attrs.get("surplus")]
    assert all(t.state == TrialState.FAIL for t in surplus)


def test_over_cap_counts_earlier_live_trials():
    study = optuna.create_study()
    trials = [study.ask() for _ in range(3)]
    assert not over_cap(study, trials[1], n_trials=2)
    assert over_cap(study, trials[2], n_trials=2)
    study.tell(trials[0], state=TrialState.FAIL)  # failed trials free their slot
    assert not over_cap(study, trials[2], n_trials=2)


def test_requeue_interrupted_trials(tmp_path):
    storage = make_storage(str(tmp_path / "s.journal"))
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)  # then the process "dies": the trial stays RUNNING
    assert requeue_interrupted(study) == 1
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # the queued trial runs next
    assert study.trials[1].state == TrialState.COMPLETE
    assert study.trials[1].params == study.trials[0].params


def test_space_parsing_and_errors(tmp_path):
    space = load_space("liver-deeplabv3plus")
    assert space.metric == "val/miou" and space.direction == "maximize"
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
