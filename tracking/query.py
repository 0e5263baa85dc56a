"""Reading searches back: trials of a search, the best trial per data set, its recipe."""

from __future__ import annotations

import csv
import io
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganmix.models.choices import NO_GENERATOR
from ganmix.models.metrics import metric_info
from ganmix.tracking.runs import (BASELINE, COMPLETED, DATA_DIR, EARLY_STOPPED, FEASIBLE, FINGERPRINT, KIND, METRIC,
                                  PARENT,
                                  SEARCH_NAME, TRIAL_ID, read_metrics)
from ganmix.tracking.confirmation import CONFIRMED, CONFIRMED_ARM, VERDICT
from ganmix.tracking.store import client, retry


@dataclass(frozen=True)
class TrialSummary:
    run_id: str
    trial_id: str
    name: str
    status: str
    completed: bool
    baseline: bool
    early_stopped: bool
    feasible: bool
    metrics: dict[str, float]
    params: dict[str, str]
    parent_run_id: str | None = None
    experiment_id: str = ""
    recipe_yaml: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class BestResult:
    dataset: str
    data: str  # which data: the train split's size, scarcity settings and fingerprint
    search: str
    metric: str
    best: TrialSummary
    baseline: TrialSummary | None  # the tuned real-only baseline: the search's best `generator: none` trial
    verdict: str | None = None  # the search's confirmed verdict, when `ganmix confirm` ran
    confirmed: str | None = None  # its answer in a few words: the arm, its lift and its generator's own effect

    def lift(self, metric: str) -> float | None:
        """Best minus the tuned real-only baseline, signed by the metric's own direction (positive: better)."""
        if self.baseline is None or metric not in self.best.metrics or metric not in self.baseline.metrics:
            return None
        return metric_info(metric).lift(self.best.metrics[metric], self.baseline.metrics[metric])


def is_real_only(summary: TrialSummary) -> bool:
    """A trial without synthetic images, as its params say: Recipe.to_params logs `generator: none` exactly when
    `Recipe.real_only` (the one test); the fixed baseline of an older search has its tag."""
    return summary.params.get("generator") == NO_GENERATOR or summary.baseline


def find_search(uri: str, name: str, *, experiment_id: str | None = None) -> Any | None:
    """The parent run of the search called `name` (in one experiment, or in any)."""
    mlflow_client = client(uri)
    ids = [experiment_id] if experiment_id else [e.experiment_id for e in retry(mlflow_client.search_experiments)]
    found = retry(mlflow_client.search_runs, ids,
                  f"tags.`{KIND}` = 'search' AND tags.`{SEARCH_NAME}` = '{name}'", max_results=1)
    return found[0] if found else None


def latest_search(uri: str, *, dataset: str | None = None) -> Any | None:
    """The parent run of the latest search (of one data set, or of any)."""
    mlflow_client = client(uri)
    experiments = [e for e in retry(mlflow_client.search_experiments) if e.name.startswith("ganmix/")]
    if dataset is not None:
        from ganmix.tracking.store import experiment_name

        experiments = [e for e in experiments if e.name == experiment_name(dataset)]
    if not experiments:
        return None
    found = retry(mlflow_client.search_runs, [e.experiment_id for e in experiments], f"tags.`{KIND}` = 'search'",
                  order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def _summary(run: Any) -> TrialSummary:
    tags = run.data.tags
    return TrialSummary(
        run_id=run.info.run_id, trial_id=tags.get(TRIAL_ID, ""), name=run.info.run_name or "",
        status=run.info.status, completed=tags.get(COMPLETED) == "true", baseline=tags.get(BASELINE) == "true",
        early_stopped=tags.get(EARLY_STOPPED) == "true", feasible=tags.get(FEASIBLE) != "false",
        metrics=read_metrics(run),
        params=dict(run.data.params), parent_run_id=tags.get(PARENT), experiment_id=run.info.experiment_id,
    )


def trial_summaries(uri: str, experiment_id: str, parent_run_id: str) -> list[TrialSummary]:
    query = f"tags.`{PARENT}` = '{parent_run_id}' AND tags.`{KIND}` = 'trial'"
    found = retry(client(uri).search_runs, [experiment_id], query, max_results=10_000,
                  order_by=["attributes.start_time ASC"])
    return [_summary(run) for run in found]


def rank(summaries: list[TrialSummary], metric: str) -> list[TrialSummary]:
    """Completed, feasible, finished trials with a finite `metric`, best first by the metric's own direction."""
    return _ranked([s for s in summaries if s.completed], metric)


def rank_stopped(summaries: list[TrialSummary], metric: str) -> list[TrialSummary]:
    """Trials a scheduler stopped early, best first by the last `metric` they reported. Their values come
    from fewer epochs, so they are never ranked with completed trials: they are the candidates that
    `ganmix confirm` re-runs in full when no trial of a kind (no GAN recipe) completed."""
    return _ranked([s for s in summaries if s.early_stopped], metric)


def _ranked(trials: list[TrialSummary], metric: str) -> list[TrialSummary]:
    """The feasible, finished ones of `trials` with a finite `metric`, best first."""
    info = metric_info(metric)
    candidates = [s for s in trials if s.feasible and s.status == "FINISHED" and _finite(s.metrics.get(metric))]
    return sorted(candidates, key=lambda s: info.sort_key(s.metrics[metric]))


def pick_best(summaries: list[TrialSummary], metric: str, *, uri: str) -> TrialSummary | None:
    """The best completed, feasible trial by `metric` (its last logged value), with its recipe attached."""
    ranked = rank(summaries, metric)
    if not ranked:
        return None
    return TrialSummary(**{**ranked[0].__dict__, "recipe_yaml": recipe_yaml(uri, ranked[0].run_id)})


def tuned_baseline(summaries: list[TrialSummary], metric: str) -> TrialSummary | None:
    """The best real-only trial: what every lift is measured against."""
    return next((s for s in rank(summaries, metric) if is_real_only(s)), None)


def recipe_yaml(uri: str, run_id: str) -> str | None:
    """The recipe.yaml a trial logged, or None when it has none."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = retry(client(uri).download_artifacts, run_id, "recipe.yaml", tmp)
        except Exception:
            return None
        return Path(path).read_text()


def best_per_dataset(uri: str, *, dataset: str | None = None, metric: str | None = None) -> list[BestResult]:
    """For each data set and each version of its data (fingerprint: scarcity settings change it): the best
    completed trial over its searches, ranked by `metric` in that metric's own direction (default: the
    latest search's objective, over the searches with that objective), with its search's tuned baseline."""
    mlflow_client = client(uri)
    experiments = [e for e in retry(mlflow_client.search_experiments) if e.name.startswith("ganmix/")]
    if dataset is not None:
        from ganmix.tracking.store import experiment_name

        experiments = [e for e in experiments if e.name == experiment_name(dataset)]
    results = []
    for exp in experiments:
        searches = list(retry(mlflow_client.search_runs, [exp.experiment_id], f"tags.`{KIND}` = 'search'",
                              order_by=["attributes.start_time DESC"]))
        groups: dict[str, list[Any]] = {}
        for search in searches:  # never pool searches over different data
            groups.setdefault(search.data.tags.get(FINGERPRINT, ""), []).append(search)
        for group in groups.values():
            chosen = metric or group[0].data.tags.get(METRIC, "val_auc")
            pool = group if metric else [s for s in group if s.data.tags.get(METRIC) == chosen]
            by_parent = {s.info.run_id: trial_summaries(uri, exp.experiment_id, s.info.run_id) for s in pool}
            best = pick_best([t for trials in by_parent.values() for t in trials], chosen, uri=uri)
            if best is None:
                continue
            search = next(s for s in pool if s.info.run_id == best.parent_run_id)
            results.append(BestResult(
                dataset=exp.name.split("/", 1)[1], data=_data_label(search), search=search.data.tags.get(SEARCH_NAME, ""),
                metric=chosen, best=best, baseline=tuned_baseline(by_parent[search.info.run_id], chosen),
                verdict=search.data.tags.get(VERDICT), confirmed=search.data.tags.get(CONFIRMED)))
    return results


def _data_label(search: Any) -> str:
    params = search.data.params
    scarcity = ", ".join(f"{k}={params[k]}" for k in ("train_per_class", "class_fraction") if params.get(k))
    return (f"train {params.get('train_size', '?')} images" + (f" ({scarcity})" if scarcity else "")
            + f", fingerprint {search.data.tags.get(FINGERPRINT, '?')[:12]}")


def trials_csv(summaries: list[TrialSummary], metric: str) -> str:
    """A table of every trial of a search, logged to its parent run."""
    param_keys = ["generator", "generator_epochs", "synthetic_ratio", "allocation", "classifier",
                  "classifier_lr", "augment", "class_weight", "filter_threshold"]
    metric_keys = sorted({k for s in summaries for k in s.metrics if k.startswith(("val_", "test_"))}
                         | ({metric} if any(metric in s.metrics for s in summaries) else set()))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["trial", "run_id", "status", "completed", "baseline", "early_stopped", "feasible", *param_keys,
                     *metric_keys])
    for s in summaries:
        writer.writerow([s.name, s.run_id, s.status, s.completed, s.baseline, s.early_stopped, s.feasible,
                         *(s.params.get(k, "") for k in param_keys),
                         *(_fmt(s.metrics.get(k)) for k in metric_keys)])
    return buffer.getvalue()


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


# Where a trial logs its generator checkpoint (search/pipeline.py writes it, `ganmix export` reads it).
GENERATOR_ARTIFACT = "generator/generator.pt"


def generator_checkpoint(uri: str, run_id: str, folder: str | Path) -> Path | None:
    """A trial's logged generator checkpoint, downloaded into `folder`; None when the run logged none."""
    names = {a.path for a in retry(client(uri).list_artifacts, run_id, GENERATOR_ARTIFACT.split("/")[0])}
    if GENERATOR_ARTIFACT not in names:
        return None
    return Path(retry(client(uri).download_artifacts, run_id, GENERATOR_ARTIFACT, str(folder)))


def confirmed_arm(search: Any) -> str | None:
    """The run name of the arm a search's confirmed verdict is about (`ganmix confirm` tags it), or None."""
    return search.data.tags.get(CONFIRMED_ARM) or None


def search_data_dir(search: Any) -> Path | None:
    """The --data-dir a search read (a tag on its parent run), so later commands read the same files."""
    value = search.data.tags.get(DATA_DIR)
    return Path(value) if value else None
