"""Fair early stopping (search/scheduler.py): one set of ASHA rungs per arm kind, on a real Tune run with a tiny
function trainable whose generator trials start behind the real-only ones and end ahead of them."""

from __future__ import annotations

import io

import pytest
from mlflow import MlflowClient
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from ganmix.search.progress import SearchProgress
from ganmix.search.scheduler import (
    ARM_TAG, ARMS_TAG, GENERATOR_ARM, REAL_ONLY_ARM, ArmASHAScheduler, ArmTally, arm_kind, grace_for, ran_to_end,
)
from ganmix.tracking.runs import RunLogger

EPOCHS = 9  # rungs at 3 (grace) and 9 (the end), reduction factor 3


def _curve_trainable():
    """Real-only recipes are good from the start and barely improve; generator recipes start far behind and
    end ahead (the shape a generator trial has when its synthetic images slow the first epochs). Made inside a
    function so Ray's workers receive it by value (they cannot import a test module)."""
    def curve(config: dict) -> None:
        for epoch in range(1, config["classifier_epochs"] + 1):
            if config["generator"] == "none":
                value = 0.80 + 0.001 * epoch + config["quality"]
            else:
                value = 0.55 + 0.04 * epoch + config["quality"]
            tune.report({"val_auc": value, "epoch": epoch})

    return curve


def _search(scheduler, tmp_path, callbacks=()) -> tune.ResultGrid:
    # The real-only recipes first, as a search enqueues its baseline first; then the generator recipes.
    generators = ["none"] * 3 + ["dcgan"] * 6
    quality = [0.0, 0.004, 0.002] + [0.0, 0.01, 0.005, 0.02, 0.001, 0.015]
    cases = [{"generator": g, "quality": q, "classifier_epochs": EPOCHS} for g, q in zip(generators, quality)]
    tuner = tune.Tuner(
        _curve_trainable(),
        param_space={"case": tune.grid_search(list(range(len(cases)))), **{
            key: tune.sample_from(lambda spec, key=key: cases[spec.config.case][key])
            for key in ("generator", "quality", "classifier_epochs")}},
        tune_config=tune.TuneConfig(metric="val_auc", mode="max", scheduler=scheduler, max_concurrent_trials=1,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0, callbacks=list(callbacks)),
    )
    return tuner.fit()


def _completed(grid: tune.ResultGrid) -> dict[str, list[float]]:
    done: dict[str, list[float]] = {REAL_ONLY_ARM: [], GENERATOR_ARM: []}
    for result in grid:
        if ran_to_end(result.config, result.metrics):
            done[arm_kind(result.config)].append(result.metrics["val_auc"])
    return done


def test_one_rung_set_per_arm_kind_lets_generator_trials_that_start_behind_complete(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("arms", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(experiment_id, run_name="search").info.run_id
    out = io.StringIO()
    progress = SearchProgress(9, "val_auc", stream=out)
    tally = ArmTally(parent=RunLogger(uri, parent), progress=progress)

    fair = ArmASHAScheduler(max_t=EPOCHS, grace_period=3, reduction_factor=3)
    done = _completed(_search(fair, tmp_path / "fair", [tally]))
    # Each arm kind keeps finalists: at least its top third runs to the end ...
    assert len(done[REAL_ONLY_ARM]) >= 1 and len(done[GENERATOR_ARM]) >= 2, done
    # ... and the best recipe found is a generator one, as the curves were built to make it.
    assert max(done[GENERATOR_ARM]) > max(done[REAL_ONLY_ARM])

    # The counts reach the console and the parent run, and agree with the results.
    tags = client.get_run(parent).data.tags
    assert int(tags[ARM_TAG.format(arm=GENERATOR_ARM, outcome="completed")]) == len(done[GENERATOR_ARM])
    stopped = 6 - len(done[GENERATOR_ARM])
    assert int(tags.get(ARM_TAG.format(arm=GENERATOR_ARM, outcome="stopped_early"), 0)) == stopped
    assert f"generator: {len(done[GENERATOR_ARM])} of 6 ran to the end" in tags[ARMS_TAG]
    progress.close()
    assert f"trials per arm: real-only: {len(done[REAL_ONLY_ARM])} of 3 ran to the end" in out.getvalue()

    # The control: one shared ASHA (what the search used before) stops every generator trial at the first rung.
    shared = ASHAScheduler(max_t=EPOCHS, grace_period=3, reduction_factor=3)
    assert _completed(_search(shared, tmp_path / "shared"))[GENERATOR_ARM] == []


def test_arm_kinds_and_the_end_of_a_trial():
    assert arm_kind({"generator": "none"}) == REAL_ONLY_ARM
    assert arm_kind({"generator": "dcgan", "synthetic_ratio": 0.0}) == REAL_ONLY_ARM
    assert arm_kind({"generator": "dcgan", "baseline": True}) == REAL_ONLY_ARM
    assert arm_kind({"generator": "ddpm", "synthetic_ratio": 0.5}) == GENERATOR_ARM
    assert ran_to_end({"classifier_epochs": 9}, {"epoch": 9}) and not ran_to_end({"classifier_epochs": 9}, {"epoch": 3})
    assert not ran_to_end({"classifier_epochs": 9}, None)
    assert grace_for(60, None) == 20 and grace_for(4, None) == 2 and grace_for(5, 8) == 5
    assert grace_for(20, None) == 7 and grace_for(20, None, 4) == 5  # one stopping rung: 7 x 3 >= 20


def test_a_preset_metric_conflicts_like_asha():
    scheduler = ArmASHAScheduler(metric="val_auc", mode="max", max_t=9, grace_period=3, reduction_factor=3)
    assert scheduler.set_search_properties("val_acc", "max") is False
    fresh = ArmASHAScheduler(max_t=9, grace_period=3, reduction_factor=3)
    assert fresh.set_search_properties("val_auc", "max") is True and fresh.metric == "val_auc"


@pytest.mark.parametrize("counts, line", [
    ({(REAL_ONLY_ARM, "completed"): 2, (REAL_ONLY_ARM, "stopped_early"): 3, (GENERATOR_ARM, "completed"): 1,
      (GENERATOR_ARM, "failed"): 1},
     "real-only: 2 of 5 ran to the end (3 stopped early); generator: 1 of 2 ran to the end (1 failed)"),
])
def test_arms_line(counts, line):
    from ganmix.search.progress import arms_line

    assert arms_line(counts) == line
    assert arms_line(counts, short=True) == "real-only 2/5, generator 1/2 to the end"


def test_a_resumed_search_carries_on_from_the_parent_runs_counts():
    from types import SimpleNamespace

    out = io.StringIO()
    progress = SearchProgress(9, "val_auc", stream=out)
    parent_run = SimpleNamespace(data=SimpleNamespace(tags={
        ARM_TAG.format(arm=REAL_ONLY_ARM, outcome="completed"): "1",
        ARM_TAG.format(arm=GENERATOR_ARM, outcome="stopped_early"): "4"}))
    tally = ArmTally(progress=progress)
    tally.resume_from(parent_run)
    tally._count(GENERATOR_ARM, "completed")  # the next trial to finish after the resume
    progress.close()
    assert out.getvalue().strip() == ("trials per arm: real-only: 1 of 1 ran to the end; "
                                      "generator: 1 of 5 ran to the end (4 stopped early)")


@pytest.mark.parametrize("max_t", [4, 6, 9, 10, 20, 30, 60])
@pytest.mark.parametrize("reduction_factor", [2, 3, 4])
def test_the_default_grace_leaves_asha_one_rung_that_stops_trials(max_t: int, reduction_factor: int) -> None:
    """Ray's own bracket for the default first rung: one milestone below max_t (one at max_t stops nothing
    more, a trial ends there anyway), so the best 1/reduction_factor of each arm kind run to the end."""
    grace = grace_for(max_t, None, reduction_factor)
    bracket = ASHAScheduler(max_t=max_t, grace_period=grace, reduction_factor=reduction_factor)._brackets[0]
    assert [rung[0] for rung in bracket._rungs if rung[0] < max_t] == [grace]
