"""What the MLflow UI says about a search at a glance: the parent run's description (markdown), each
trial's rank and lift over the tuned real-only baseline, the winner's tag and the experiment's description.

The text is built by pure functions of TrialSummary lists (unit-testable); `SearchDescriber` writes it
from the driver, kept current as trials finish.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ganmix.models.metrics import confirming_metric, logged_name, metric_info, test_counterpart
from ganmix.models.numbers import decimals, number, rounded
from ganmix.tracking.confirmation import VERDICT_SHORT
from ganmix.tracking.naming import run_name
from ganmix.tracking.query import TrialSummary, _summary, is_real_only, rank, trial_summaries, tuned_baseline
from ganmix.tracking.runs import EARLY_STOPPED, NOTE, RunLogger
from ganmix.tracking.store import client, retry

RANK, BEST = "ganmix.rank", "ganmix.best"
# MLflow's shared views: the runs table reads its columns from this experiment tag when the link carries
# `viewStateShareKey=ganmix` (what its own Share button writes), so a first visit already shows the answer.
VIEW_KEY = "ganmix"
SHARED_VIEW = f"mlflow.sharedViewState.{VIEW_KEY}"
TOP = 5  # trials listed in the parent's description (the tuned baseline is added when not among them)
# Once `ganmix confirm` ran, the search's description leads with its verdict and this heading introduces
# the one-seed ranking below it (a later confirmation replaces everything above the heading).
ONE_SEED = "#### One-seed ranking (validation split, one seed per trial: unconfirmed)"
# How every table names the arm or trial every lift is measured against (with its recipe's name).
TUNED_BASELINE = "tuned baseline"


def lift_metric(metric: str) -> str:
    """The per-trial metric holding its difference from the tuned baseline (positive = better)."""
    return f"lift_{metric}"


def run_link(experiment_id: str, run_id: str) -> str:
    """A relative link inside the MLflow UI (its router lives in the URL fragment); the query keeps the
    run page in the model-training view (without it MLflow 3 opens runs in its GenAI view)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def rank_label(summary: TrialSummary, order: dict[str, int]) -> str | None:
    """`ganmix.rank`: 1 = best; words for trials outside the ranking; None while still running."""
    if summary.run_id in order:
        return str(order[summary.run_id])
    if summary.status == "RUNNING":
        return None
    if summary.status != "FINISHED":
        return summary.status.lower()
    if summary.early_stopped:
        return "stopped early"
    return "infeasible" if not summary.feasible else "no value"


def answer(summaries: Sequence[TrialSummary], *, metric: str, dataset: str, done: bool) -> str:
    """The search's answer in one sentence."""
    ranking = rank(summaries, metric)
    so_far = "" if done else " so far"
    if not ranking:
        return f"No trial has completed{so_far}."
    best, base = ranking[0], tuned_baseline(summaries, metric)
    if is_real_only(best):
        return (f"On {dataset}, the real-only `{best.name}` wins{so_far} ({metric} {number(best.metrics[metric])}): "
                "no augmentation recipe beat real data alone.")
    if base is None:
        return (f"On {dataset}, `{best.name}` leads{so_far} ({metric} {number(best.metrics[metric])}); no real-only "
                "baseline has completed yet.")
    delta = metric_info(metric).lift(best.metrics[metric], base.metrics[metric])
    places = decimals(best.metrics[metric], base.metrics[metric], delta)
    return (f"On {dataset}, `{best.name}` wins{so_far} ({metric} {number(best.metrics[metric], places)}), "
            f"{number(delta, places, signed=True)} over the tuned real-only baseline `{base.name}` "
            f"({number(base.metrics[metric], places)}).")


def baseline_label(summary: TrialSummary) -> str:
    """`tuned baseline: real-only lr=2e-3 flip_rotate`: the tuned baseline named by its recipe, as the
    confirmation's tables name it (the search's fixed baseline trial is called `baseline`)."""
    params = summary.params
    if "classifier_lr" not in params:
        return f"{TUNED_BASELINE}: {summary.name}"
    return f"{TUNED_BASELINE}: {run_name(_RealOnly(params))}"


class _RealOnly:
    """A real-only trial's logged params, read as the recipe tracking/naming.py names."""

    baseline, real_only = False, True

    def __init__(self, params: dict[str, str]) -> None:
        self.params = params

    def to_dict(self) -> dict[str, object]:
        return {"classifier_lr": float(self.params["classifier_lr"]), "augment": self.params.get("augment", "none")}


def description(summaries: Sequence[TrialSummary], *, experiment_id: str, metric: str, dataset: str,
                search: str, done: bool, top: int = TOP) -> str:
    """The parent run's markdown: the answer, the top trials and the tuned baseline with links, the counts."""
    ranking = rank(summaries, metric)
    base = tuned_baseline(summaries, metric)
    rows = ranking[:top] + ([base] if base is not None and base not in ranking[:top] else [])
    test = test_counterpart(metric)
    lines = [f"**{answer(summaries, metric=metric, dataset=dataset, done=done)}**", ""]
    if rows:
        header = ["rank", "trial", logged_name(metric), "vs baseline", *([logged_name(test)] if test else []),
                  "trial id"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        deltas = {s.run_id: metric_info(metric).lift(s.metrics[metric], base.metrics[metric]) if base is not None
                  else None for s in rows}
        # One number of decimals per column (models/numbers.py's rule): the rows stay apart.
        val_places = decimals(*(s.metrics[metric] for s in rows))
        delta_places = decimals(*deltas.values())
        test_places = decimals(*(s.metrics.get(test) for s in rows)) if test else 0
        for s in rows:
            label = baseline_label(s) if s is base else s.name
            cells = [str(ranking.index(s) + 1), f"[{label}]({run_link(experiment_id, s.run_id)})",
                     number(s.metrics[metric], val_places), number(deltas[s.run_id], delta_places, signed=True),
                     *([number(s.metrics.get(test), test_places)] if test else []), f"`{s.trial_id}`"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    counts = _counts(summaries)
    lines.append(f"Search `{search}`: {counts}. Objective {metric} ({metric_info(metric).mode}) on the validation split; test "
                 "metrics are only logged. *vs baseline* = difference from the best real-only trial, "
                 f"positive is better (metric `{logged_name(lift_metric(metric))}` on every trial). "
                 "All trials: the `trials_table.json` and `trials.csv` artifacts; the Optuna plots under `optuna/`.")
    return "\n".join(lines)


def _counts(summaries: Sequence[TrialSummary]) -> str:
    completed = sum(s.completed and s.status == "FINISHED" for s in summaries)
    stopped = sum(s.early_stopped for s in summaries)
    failed = sum(s.status == "FAILED" for s in summaries)
    running = sum(s.status == "RUNNING" for s in summaries)
    parts = [f"{len(summaries)} trials", f"{completed} completed", f"{stopped} stopped early", f"{failed} failed"]
    return ", ".join(parts + ([f"{running} running"] if running else []))


def experiment_description(dataset: str) -> str:
    return (f"GAN augmentation searches on **{dataset}** (`ganmix search`). Each top-level run is one search: "
            "its Description gives the answer and links the best trials. Expand it for its trials, named by "
            "recipe (`baseline`, `real-only lr=...`, `acgan r=<synthetic ratio> e=<GAN epochs> z=<latent size>`); "
            "tags `ganmix.rank` and `ganmix.best`, metric `lift_<objective>` = difference from the tuned "
            "real-only baseline. A trial's sample grid is under Artifacts, `samples/grid.png`.")


@dataclass
class SearchDescriber:
    """Keeps a search's parent description, ranks, lifts and winner tag current; writes only what changed.

    While the search runs it keeps the leaderboard in memory: `update` adds the run of a trial that just ended
    (the driver's writer read it to close it), `write` ranks what it holds; the store is read in full once,
    on the first update (a resumed search's earlier trials), and by `refresh` at the end."""

    parent: RunLogger  # the search's parent run, written through its retrying, buffering logger
    experiment_id: str
    metric: str
    dataset: str
    search: str
    _written: dict[str, tuple[str | None, float | None]] = field(default_factory=dict)
    _best: str | None = None
    _trials: dict[str, RunLogger] = field(default_factory=dict)
    _lead: str | None = None  # a confirmation's lead of the description, read once (a resumed search keeps it)
    _lead_read: bool = False
    _known: dict[str, TrialSummary] | None = None  # run id -> its trial, as of the latest update
    _text: str | None = None  # the description as last written

    def _trial(self, run_id: str) -> RunLogger:
        return self._trials.setdefault(run_id, RunLogger(self.parent.uri, run_id))

    def _summaries(self) -> dict[str, TrialSummary]:
        if self._known is None:
            found = trial_summaries(self.parent.uri, self.experiment_id, self.parent.run_id)
            self._known = {s.run_id: s for s in found}
        return self._known

    def update(self, run: Any, *, status: str | None = None) -> None:
        """One trial's run as it is now (`status`: what the caller just set it to)."""
        summary = _summary(run)
        early = run.data.tags.get(EARLY_STOPPED) == "true"
        summary = replace(summary, status=status or summary.status, early_stopped=early)
        self._summaries()[summary.run_id] = summary

    def refresh(self, *, done: bool = False) -> list[TrialSummary]:
        """Everything read from the store again, then written: the search's final word."""
        self._known = None
        return self.write(done=done)

    def write(self, *, done: bool = False) -> list[TrialSummary]:
        summaries = list(self._summaries().values())
        ranking = rank(summaries, self.metric)
        order = {s.run_id: i + 1 for i, s in enumerate(ranking)}
        base = tuned_baseline(summaries, self.metric)
        for s in summaries:
            label = rank_label(s, order)
            value = s.metrics.get(self.metric)
            # Rounded as it prints (models/numbers.py): the runs table shows every digit a metric has.
            delta = rounded(metric_info(self.metric).lift(value, base.metrics[self.metric])) \
                if base and _finite(value) else None
            if label is None or self._written.get(s.run_id) == (label, delta):
                continue
            if delta is not None:
                self._trial(s.run_id).log_metrics({lift_metric(self.metric): delta})
            self._trial(s.run_id).set_tags({RANK: label, **({BEST: "true"} if ranking and s is ranking[0] else {})})
            self._written[s.run_id] = (label, delta)
        winner = ranking[0].run_id if ranking else None
        if self._best and self._best != winner:  # the crown moves: the old winner loses its tag
            self._trial(self._best).delete_tag(BEST)
        if winner and winner != self._best:
            self._trial(winner).set_tags({BEST: "true"})
        self._best = winner
        text = description(summaries, experiment_id=self.experiment_id, metric=self.metric,
                           dataset=self.dataset, search=self.search, done=done)
        if not self._lead_read:
            note = retry(client(self.parent.uri).get_run, self.parent.run_id).data.tags.get(NOTE, "")
            self._lead = note.split(ONE_SEED, 1)[0] if ONE_SEED in note else None
            self._lead_read = True
        text = lead_with_confirmation(text, self._lead) if self._lead else text
        if text != self._text:
            self.parent.set_tags({NOTE: text})
            self._text = text
        if done:  # what a tracking outage held back is written now, or the search says it could not be
            for trial in self._trials.values():
                trial.flush(seconds=300, strict=True)
        return summaries


def describe_experiment(uri: str, experiment_id: str, dataset: str) -> None:
    retry(client(uri).set_experiment_tag, experiment_id, NOTE, experiment_description(dataset))


def lead_with_confirmation(note: str, lead: str) -> str:
    """The search's description once confirmed: `lead` (the verdict), then the one-seed ranking, labelled
    as such; a previous confirmation's lead is replaced."""
    ranking = unconfirmed(note.split(ONE_SEED, 1)[1] if ONE_SEED in note else note)
    return f"{lead.rstrip()}\n\n{ONE_SEED}\n\n{ranking.lstrip()}"


def unconfirmed(ranking: str) -> str:
    """The one-seed ranking below a confirmed verdict: its answer line neither bold nor a win (`answer`
    writes "... wins ..."), so that the verdict above is the only claim."""
    first, sep, rest = ranking.lstrip().partition("\n")
    if first.startswith("**") and first.endswith("**"):
        first = first[2:-2]
    first = first.replace(" wins so far ", " ranks first so far ").replace(" wins ", " ranks first ")
    return f"{first}{sep}{rest}"


def write_confirmed_lead(uri: str, run_id: str, lead: str) -> None:
    """Rewrite a search run's description so that it leads with its confirmation's verdict."""
    mlflow_client = client(uri)
    note = retry(mlflow_client.get_run, run_id).data.tags.get(NOTE, "")
    retry(mlflow_client.set_tag, run_id, NOTE, lead_with_confirmation(note, lead))


def runs_view(metric: str) -> dict[str, object]:
    """The runs table as ganmix's link opens it: the objective, the lift over the tuned baseline, the test
    metric and the rank as columns; then what `ganmix confirm` found, on the search's own row and on its
    confirmation's: the lift on the test split over seeds and the verdict in a few words ("+0.012*", "no
    lift"; the whole verdict is the `ganmix.confirmed` tag). MLflow ignores expanded rows in a shared
    view: + expands a search."""
    test = test_counterpart(metric)
    metrics = [metric, lift_metric(metric), *([test] if test else [])]
    return {
        # Without Dataset (a wide column): on a laptop screen the rank would otherwise be off to the right.
        "selectedColumns": [*(f"metrics.`{logged_name(m)}`" for m in metrics), f"tags.`{RANK}`",
                            f"metrics.`{logged_name(lift_metric(confirming_metric(metric)))}`", f"tags.`{VERDICT_SHORT}`"],
    }


def share_view(uri: str, experiment_id: str, *, metric: str) -> None:
    """Written by every search: the latest search's objective decides the columns."""
    retry(client(uri).set_experiment_tag, experiment_id, SHARED_VIEW, json.dumps(runs_view(metric)))
