"""The parent run's description, ranks, lifts and winner tag; the trials table and Optuna plots;
against a real MLflow SQLite store (no training: runs are written directly)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from ganmix.tracking import describe, query, figures
from ganmix.tracking.query import TrialSummary
from ganmix.tracking.runs import BASELINE, COMPLETED, EARLY_STOPPED, KIND, PARENT, TRIAL_ID, RunLogger


def summary(name: str, value: float | None, *, run_id: str | None = None, baseline: bool = False,
            generator: str = "dcgan", completed: bool = True, status: str = "FINISHED",
            early_stopped: bool = False) -> TrialSummary:
    metrics = {} if value is None else {"val_auc": value, "test_auc": value - 0.01}
    return TrialSummary(run_id=run_id or name.replace(" ", "_"), trial_id=f"t-{name[:3]}", name=name, status=status,
                        completed=completed, baseline=baseline, early_stopped=early_stopped, feasible=True,
                        metrics=metrics, params={"generator": "none" if baseline else generator})


TRIALS = [
    summary("baseline", 0.90, baseline=True),
    summary("real-only lr=3e-4", 0.92, generator="none"),
    summary("acgan r=1.86 e=37 z=16", 0.95),
    summary("cvae r=0.5 e=5 z=16", 0.91),
    summary("dcgan r=2 e=9 z=64", 0.80, completed=False, early_stopped=True),
    summary("wgan_gp r=1 e=3 z=16", None, completed=False, status="FAILED"),
]


def test_ranking_tuned_baseline_and_lift():
    ranking = query.rank(TRIALS, "val_auc")
    assert [s.name for s in ranking] == ["acgan r=1.86 e=37 z=16", "real-only lr=3e-4", "cvae r=0.5 e=5 z=16",
                                         "baseline"]
    # The tuned baseline is the best real-only trial, not necessarily the fixed one.
    assert query.tuned_baseline(TRIALS, "val_auc").name == "real-only lr=3e-4"
    order = {s.run_id: i + 1 for i, s in enumerate(ranking)}
    assert [describe.rank_label(s, order) for s in TRIALS] == ["4", "2", "1", "3", "stopped early", "failed"]


def test_stopped_trials_rank_apart_as_candidates_for_a_full_rerun():
    """When no GAN trial completed, confirm re-runs the best stopped one: ranked among stopped trials only."""
    trials = [*TRIALS, summary("cvae r=1 e=3 z=16", 0.85, completed=False, early_stopped=True),
              summary("real-only lr=1e-2", 0.99, generator="none", completed=False, early_stopped=True)]
    stopped = query.rank_stopped(trials, "val_auc")
    assert [s.name for s in stopped] == ["real-only lr=1e-2", "cvae r=1 e=3 z=16", "dcgan r=2 e=9 z=64"]
    assert all(s.name not in {t.name for t in stopped} for s in query.rank(trials, "val_auc"))


def test_description_answers_in_one_sentence_and_links_runs():
    text = describe.description(TRIALS, experiment_id="7", metric="val_auc", dataset="digits",
                                search="s1", done=True)
    first = text.splitlines()[0]
    assert first == ("**On digits, `acgan r=1.86 e=37 z=16` wins (val_auc 0.950), +0.030 over the tuned real-only "
                     "baseline `real-only lr=3e-4` (0.920).**")
    # A GFM table, after a blank line; each column at the decimals that keep its rows apart (models/numbers.py).
    assert "\n\n| rank | trial | val/auc | vs baseline | test/auc | trial id |\n|---|---|---|---|---|---|\n" in text
    assert "| 1 | [acgan r=1.86 e=37 z=16](#/experiments/7/runs/acgan_r=1.86_e=37_z=16?workflowType=machine_learning) | 0.950 | +0.030 | 0.940 |" in text
    assert "6 trials, 4 completed, 1 stopped early, 1 failed" in text
    top1 = describe.description(TRIALS, experiment_id="7", metric="val_auc", dataset="digits",
                                search="s1", done=False, top=1)
    # The baseline row is added below the top, named as the confirmation's tables name it.
    assert "wins so far" in top1 and "[tuned baseline: real-only lr=3e-4]" in top1
    real_wins = describe.answer(TRIALS[:2], metric="val_auc", dataset="digits", done=True)
    assert "real-only `real-only lr=3e-4` wins" in real_wins and "no augmentation recipe beat" in real_wins
    assert describe.answer([], metric="val_auc", dataset="digits", done=False) == \
        "No trial has completed so far."


def test_trials_table_lists_every_trial_best_first():
    table = figures.trials_table(TRIALS, "val_auc")
    assert table["trial"][:2] == ["acgan r=1.86 e=37 z=16", "real-only lr=3e-4"]
    assert table["rank"] == ["1", "2", "3", "4", "stopped early", "failed"]
    assert {len(column) for column in table.values()} == {len(TRIALS)}
    assert {"val/auc", "lift/val_auc", "test/auc", "generator", "run_id"} <= set(table)  # as the runs table names them


@pytest.fixture()
def store(tmp_path: Path, migrated_store: str) -> tuple[str, MlflowClient, str, str]:
    uri = migrated_store
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("ganmix/digits", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(experiment_id, tags={KIND: "search"}, run_name="s1").info.run_id
    return uri, client, experiment_id, parent


def add_trial(client: MlflowClient, experiment_id: str, parent: str, name: str, value: float, *,
              baseline: bool = False, early: bool = False) -> str:
    tags = {KIND: "trial", PARENT: parent, TRIAL_ID: name, COMPLETED: str(not early).lower(),
            BASELINE: str(baseline).lower(), **({EARLY_STOPPED: "true"} if early else {})}
    run_id = client.create_run(experiment_id, tags=tags, run_name=name).info.run_id
    client.log_param(run_id, "generator", "none" if baseline else "acgan")
    client.log_metric(run_id, "val/auc", value)  # as RunLogger logs it
    client.set_terminated(run_id, "FINISHED")
    return run_id


def test_describer_keeps_ranks_lifts_and_the_winner_current(store):
    uri, client, experiment_id, parent = store
    base = add_trial(client, experiment_id, parent, "baseline", 0.90, baseline=True)
    gan = add_trial(client, experiment_id, parent, "acgan r=1 e=3 z=16", 0.93)
    early = add_trial(client, experiment_id, parent, "cvae r=1 e=3 z=16", 0.70, early=True)
    describer = describe.SearchDescriber(RunLogger(uri, parent), experiment_id, "val_auc", "digits", "s1")
    describer.refresh()
    runs = {r.info.run_id: r for r in client.search_runs([experiment_id], f"tags.`{PARENT}` = '{parent}'")}
    assert [runs[r].data.tags[describe.RANK] for r in (gan, base, early)] == ["1", "2", "stopped early"]
    assert [describe.BEST in runs[r].data.tags for r in (gan, base, early)] == [True, False, False]
    assert runs[gan].data.metrics["lift/val_auc"] == pytest.approx(0.03)
    assert runs[early].data.metrics["lift/val_auc"] == pytest.approx(-0.20)
    note = client.get_run(parent).data.tags[describe.NOTE]
    assert note.startswith("**On digits, `acgan r=1 e=3 z=16` wins so far") and f"runs/{gan}?workflowType=machine_learning)" in note
    # A better trial finishes: the crown moves and the old winner loses its tag.
    better = add_trial(client, experiment_id, parent, "dcgan r=2 e=9 z=64", 0.97)
    describer.refresh(done=True)
    assert client.get_run(better).data.tags[describe.RANK] == "1"
    assert describe.BEST in client.get_run(better).data.tags and describe.BEST not in client.get_run(gan).data.tags
    assert client.get_run(gan).data.tags[describe.RANK] == "2"
    assert client.get_run(parent).data.tags[describe.NOTE].startswith("**On digits, `dcgan r=2 e=9 z=64` wins (")
    # Confirmed, then resumed: the description keeps leading with the confirmation above the fresh ranking.
    describe.write_confirmed_lead(uri, parent, "**Confirmed over 6 seeds: x**")
    add_trial(client, experiment_id, parent, "wgan_gp r=1 e=5 z=64", 0.98)
    describe.SearchDescriber(RunLogger(uri, parent), experiment_id, "val_auc", "digits", "s1").refresh(done=True)
    note = client.get_run(parent).data.tags[describe.NOTE]
    assert note.startswith("**Confirmed over 6 seeds: x**") and note.count(describe.ONE_SEED) == 1
    # Below the verdict, the one-seed ranking claims nothing: not bold, no "wins".
    ranking = note.split(describe.ONE_SEED)[1].lstrip()
    assert ranking.startswith("On digits, `wgan_gp r=1 e=5 z=64` ranks first (") and "wins" not in ranking


def test_trials_table_and_optuna_plots_on_the_parent(store):
    uri, client, experiment_id, parent = store
    add_trial(client, experiment_id, parent, "baseline", 0.90, baseline=True)
    add_trial(client, experiment_id, parent, "acgan r=1 e=3 z=16", 0.93)
    summaries = describe.SearchDescriber(RunLogger(uri, parent), experiment_id, "val_auc", "digits", "s1").refresh()
    figures.log_trials_table(RunLogger(uri, parent), summaries, "val_auc")
    table = json.loads(Path(client.download_artifacts(parent, figures.TABLE_FILE)).read_text())
    assert table["columns"][:3] == ["rank", "trial", "val/auc"] and [row[1] for row in table["data"]] == \
        ["acgan r=1 e=3 z=16", "baseline"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) - t.suggest_int("y", 0, 3), n_trials=6)
    logged = figures.log_study_figures(RunLogger(uri, parent), study)
    assert logged == ["optuna/optimization_history.png", "optuna/parallel_coordinate.png",
                      "optuna/param_importances.png"]
    assert {a.path for a in client.list_artifacts(parent, "optuna")} == set(logged)


def test_shared_view_selects_the_answers_columns(store):
    uri, client, experiment_id, _ = store
    describe.share_view(uri, experiment_id, metric="val_macro_f1")
    view = json.loads(client.get_experiment(experiment_id).tags[describe.SHARED_VIEW])
    assert view["selectedColumns"][:4] == ["metrics.`val/macro_f1`", "metrics.`lift/val_macro_f1`",
                                           "metrics.`test/macro_f1`", "tags.`ganmix.rank`"]
    # What `ganmix confirm` writes on the search's own row: the confirmed lift on the test split, the verdict.
    assert view["selectedColumns"][4:] == ["metrics.`lift/test_macro_f1`", "tags.`ganmix.verdict_short`"]
    # A sample-metric objective has no test counterpart.
    assert describe.runs_view("fid")["selectedColumns"][:2] == ["metrics.`sample/fid`", "metrics.`lift/fid`"]


def test_one_formatting_rule_shows_the_interval_around_the_mean():
    from ganmix.models.numbers import decimals, interval, number, rounded

    # The CLI's old "0.9999 1.000..1.000": the digits that keep the mean inside its interval.
    places = decimals(0.99994, 0.99981, 1.0)
    assert (number(0.99994, places), interval(0.99981, 1.0, places)) == ("0.9999", "0.9998..1.0000")
    # The lead's old "-0.000..+0.000" and `ganmix best`'s "-0.0000": a value that is not zero never prints as one.
    places = decimals(-0.00021, -0.0009, 0.0003)
    assert interval(-0.0009, 0.0003, places, signed=True) == "-0.0009..+0.0003"
    assert number(-0.00021, places, signed=True) == "-0.0002" and number(-0.00004) == "-0.00004"
    assert number(0.0, signed=True) == "+0.000" and number(-0.0) == "0.000" and number(None) == "-"
    assert number(0.9997) == "0.9997" and number(0.941) == "0.941"  # an AUC below 1 never shows as 1.000
    assert rounded(0.123456, 0.1232) == 0.1235 and number(3e-9, signed=True) == "+3.0e-09"
