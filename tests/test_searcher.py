"""The informed searcher (search/searcher.py): early-stopped trials reach Optuna as PRUNED on a real Tune run with
Ray's OptunaSearch underneath; constraints and the study's plots still work; TPE settings follow the budget."""

from __future__ import annotations

import math

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from ray import tune

from ganmix.search.constraints import Bound
from ganmix.search.ray_internals import optuna_study
from ganmix.search.scheduler import ArmASHAScheduler
from ganmix.search.searcher import ConstrainedOptunaSearch, make_sampler, startup_trials
from ganmix.tracking.figures import log_study_figures
from ganmix.tracking.runs import RunLogger

EPOCHS = 9


def _space(trial: optuna.Trial) -> dict:
    trial.suggest_categorical("generator", ["none", "dcgan"])
    trial.suggest_float("quality", 0.0, 0.05)
    return {"classifier_epochs": EPOCHS}


def _trainable():
    def curve(config: dict) -> None:  # made inside a function: Ray's workers receive it by value
        for epoch in range(1, config["classifier_epochs"] + 1):
            value = 0.6 + 0.02 * epoch + config["quality"] + (0.05 if config["generator"] == "none" else 0.0)
            extra = {} if config["generator"] == "none" else {"near_copy_fraction": 0.9 * config["quality"] * 20}
            tune.report({"val_auc": value, "epoch": epoch, **extra})

    return curve


def test_early_stopped_trials_reach_optuna_as_pruned_with_their_last_value(tmp_path):
    bounds = (Bound("near_copy_fraction", "max", 0.5),)
    searcher = ConstrainedOptunaSearch(space=_space, metric="val_auc", mode="max",
                                       sampler=make_sampler(trials=10, seed=0), bounds=bounds)
    grid = tune.Tuner(
        _trainable(),
        tune_config=tune.TuneConfig(metric="val_auc", mode="max", search_alg=searcher, num_samples=10,
                                    scheduler=ArmASHAScheduler(max_t=EPOCHS, grace_period=3, reduction_factor=3),
                                    max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    ).fit()
    study = optuna_study(searcher)
    by_state = {state: [t for t in study.trials if t.state == state] for state in TrialState}
    stopped = [r for r in grid if r.metrics["epoch"] < EPOCHS]
    assert stopped, "the scheduler stopped no trial: nothing to check"
    assert len(by_state[TrialState.PRUNED]) == len(stopped)
    assert len(by_state[TrialState.COMPLETE]) == len(grid) - len(stopped)
    for trial in by_state[TrialState.PRUNED]:
        # The value the scheduler stopped it on, as the intermediate value of its last step (never a final value).
        assert trial.last_step < EPOCHS and trial.value == trial.intermediate_values[trial.last_step]
    stopped_values = sorted(r.metrics["val_auc"] for r in stopped)
    assert sorted(t.value for t in by_state[TrialState.PRUNED]) == pytest.approx(stopped_values)
    complete_values = sorted(r.metrics["val_auc"] for r in grid if r.metrics["epoch"] == EPOCHS)
    assert sorted(t.value for t in by_state[TrialState.COMPLETE]) == pytest.approx(complete_values)
    # Constraints are recorded on pruned and complete trials alike (real-only trials are feasible).
    for trial in study.trials:
        (constraint,) = [v for k, v in trial.system_attrs.items() if k.endswith("near_copy_fraction_max")]
        assert constraint <= 0 if trial.params["generator"] == "none" else math.isfinite(constraint)

    # The study's plots: importances come from the complete trials (Optuna's default), the pruned ones in place.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("s", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(experiment_id, run_name="search").info.run_id
    if len(by_state[TrialState.COMPLETE]) >= 2:
        importances = optuna.importance.get_param_importances(study)
        assert set(importances) <= {"generator", "quality"}
    logged = log_study_figures(RunLogger(uri, parent), study)
    assert "optuna/optimization_history.png" in logged and "optuna/parallel_coordinate.png" in logged


@pytest.mark.parametrize("trials, startup", [(1, 3), (8, 3), (12, 3), (16, 4), (24, 6), (48, 10), (200, 10)])
def test_tpe_startup_follows_the_budget(trials, startup):
    assert startup_trials(trials) == startup
    sampler = make_sampler(trials=trials, seed=7)
    # Optuna exposes no getters for its sampler settings: read what the constructor stored.
    assert sampler._n_startup_trials == startup  # noqa: SLF001
    assert sampler._multivariate and sampler._group  # noqa: SLF001 - the conditional space, modelled per family


def test_the_demo_budget_gets_guided_trials():
    # 8 trials (the demo): with Optuna's default of 10 random trials none was guided; now 5 are.
    assert 8 - startup_trials(8) == 5


def test_a_share_of_real_only_trials_is_kept_whatever_the_sampler_prefers(tmp_path):
    """A sampler that never draws `none` (PartialFixedSampler over ganmix's TPE) still gets a real-only trial
    whenever real-only trials fall below a quarter of those asked: trials 0, 4 and 8 of 12, interleaved with the
    generator trials, their other dimensions drawn by the sampler."""
    from ganmix.search.searcher import MIN_REAL_ONLY_SHARE

    sampler = optuna.samplers.PartialFixedSampler({"generator": "dcgan"}, make_sampler(trials=12, seed=0))
    searcher = ConstrainedOptunaSearch(space=_space, metric="val_auc", mode="max", sampler=sampler,
                                       real_only_share=MIN_REAL_ONLY_SHARE)
    tune.Tuner(
        _trainable(),
        tune_config=tune.TuneConfig(metric="val_auc", mode="max", search_alg=searcher, num_samples=12,
                                    max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    ).fit()
    trials = sorted(optuna_study(searcher).trials, key=lambda t: t.number)
    assert len(trials) == 12
    assert [t.number for t in trials if t.params["generator"] == "none"] == [0, 4, 8]
    assert all("quality" in t.params for t in trials)
