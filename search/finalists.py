"""Finalists chosen on more than one seed: once a search's trials end, the best `count` recipes of each arm
kind (real-only; with a generator) are re-run in full over `seeds` extra seeds on the validation split, as
Ray tasks with the search's resources (confirm_task.run_jobs, the machinery `ganmix confirm` uses; on one
machine without GPUs the driver takes one of the slots), and ranked on the mean of those runs. `ganmix
confirm` takes its candidates from this ranking.

Why a stage of its own and not Ray Tune's `Repeater` or Optuna's `WilcoxonPruner`: Repeater repeats every
suggestion (count x seeds the cost of the whole search, not of its finalists) and its docstring advises
against an early-stopping scheduler beside it (ASHA would judge each repeat on its own); WilcoxonPruner is an
Optuna pruner, which Ray Tune's OptunaSearch never consults (Tune's scheduler decides what stops), and it
wants one trial process to evaluate instance after instance (its step is the instance), which would replace
ASHA rather than add a final stage. Re-running a handful of recipes after the Tuner ends keeps ASHA as it
is and costs 2 x count x seeds runs.

A finalist that ASHA stopped early is re-run in full like any other, so every value of the ranking comes
from complete runs (never from a rung); stopped trials fill an arm kind only when fewer than `count` of
its trials completed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ganmix.models.metrics import metric_info
from ganmix.tracking import finalists as tracking
from ganmix.tracking import query
from ganmix.tracking.finalists import mean_metric

SEED_OFFSET = 1000  # finalist seeds: spec.seed + 1000 + i, apart from the search's and the confirmation's

__all__ = ["Finalist", "dispatch_order", "has_stage", "mean_metric", "pick", "ranked", "run_stage"]


@dataclass(frozen=True)
class Finalist:
    trial: query.TrialSummary
    values: dict[int, float]  # seed -> the metric of its re-evaluation (seeds that finished)

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.values.values()))) if self.values else math.nan

    @property
    def sd(self) -> float:
        return float(np.std(list(self.values.values()), ddof=1)) if len(self.values) > 1 else math.nan


def pick(summaries: list[query.TrialSummary], metric: str, count: int) -> list[query.TrialSummary]:
    """The best `count` trials of each arm kind (real-only first), completed ones first, then stopped ones."""
    chosen: list[query.TrialSummary] = []
    for real_only in (True, False):
        kind = [s for s in query.rank(summaries, metric) if query.is_real_only(s) == real_only]
        stopped = [s for s in query.rank_stopped(summaries, metric) if query.is_real_only(s) == real_only]
        chosen += (kind + stopped)[:count]
    return chosen


def dispatch_order(trials: list[query.TrialSummary]) -> list[query.TrialSummary]:
    """The order the finalists' seeds are handed to the slots: recipes with a generator first (they train a
    generator before the same classifier), so that the slots' last seeds are short ones and end together."""
    return sorted(trials, key=query.is_real_only)  # stable: each kind keeps its ranking order


def ranked(summaries: list[query.TrialSummary], metric: str) -> list[query.TrialSummary]:
    """The trials that have a finalist mean of `metric`, best mean first (empty: no finalists stage ran)."""
    info, key = metric_info(metric), mean_metric(metric)
    with_mean = [s for s in summaries if math.isfinite(s.metrics.get(key, math.nan))]
    return sorted(with_mean, key=lambda s: info.sort_key(s.metrics[key]))


def seeds_of(spec: Any) -> list[int]:
    return [spec.seed + SEED_OFFSET + i for i in range(spec.finalists["seeds"])]


def has_stage(spec: Any) -> bool:
    """Whether a search of `spec` ends with a finalists stage: `finalists.count` above 0 and a validation
    metric as the objective (a sample metric needs the generator's samples scored, which re-evaluations skip)."""
    return spec.finalists["count"] > 0 and spec.metric.startswith("val_")


def run_stage(*, spec: Any, options: Any, uri: str, experiment_id: str, parent: Any,
              beside: Callable[[], None] | None = None) -> list[Finalist]:
    """Re-evaluate the search's finalists and log the ranking; returns them best mean first. Off (nothing
    run) when `finalists.count` is 0, or when the objective is not a validation metric (a sample metric
    needs the generator's samples scored, which the re-evaluations skip). `beside`: the driver's own work,
    done while the seeds run (confirm_task.run_jobs)."""
    count = spec.finalists["count"]
    if not has_stage(spec):
        if count and not options.quiet:
            print(f"finalists: skipped (objective {spec.metric} is not a validation metric)", flush=True)
        return []
    from ganmix.search.confirm_task import SeedJob, run_jobs
    from ganmix.search.preflight import load_search_data
    from ganmix.search.recipe import Recipe

    summaries = query.trial_summaries(uri, experiment_id, parent.run_id)
    trials = pick(summaries, spec.metric, count)
    if not trials:
        return []
    seeds = seeds_of(spec)
    jobs = {}
    for trial in dispatch_order(trials):
        text = query.recipe_yaml(uri, trial.run_id)
        if text is None:  # a trial that failed before logging its recipe cannot be re-run
            continue
        recipe = Recipe.from_yaml(text, source=f"run {trial.run_id}").replace(baseline=False)
        for seed in seeds:
            jobs[(trial.run_id, seed)] = SeedJob(recipe.with_seed(seed).to_yaml(), parent_run_id=trial.run_id,
                                                 name=f"{trial.name} finalist seed={seed}",
                                                 tags=tracking.seed_run_tags(trial_run_id=trial.run_id, seed=seed))
    if not options.quiet:
        print(f"finalists: re-running {len(trials)} recipes (the best {count} real-only and {count} with a generator) "
              f"over {len(seeds)} more seeds on the validation split", flush=True)
    dataset = load_search_data(spec, options.data_dir)  # as the trials loaded it: the same train subset
    from ganmix.search.preflight.weights import fetch_search_weights

    results = run_jobs(jobs, [dataset], weights=fetch_search_weights(spec), uri=uri, experiment_id=experiment_id, cpus=spec.cpus_per_trial,
                       gpus=spec.gpus_per_trial, cache_dir=str((options.results_dir / "cache").resolve()),
                       address=options.address, quiet=options.quiet, label="finalists", beside=beside)
    finalists = [Finalist(trial, {seed: out[spec.metric] for seed in seeds
                                  if isinstance(out := results.get((trial.run_id, seed)), dict)
                                  and math.isfinite(out.get(spec.metric, math.nan))})
                 for trial in trials]
    info = metric_info(spec.metric)
    finalists.sort(key=lambda f: info.sort_key(f.mean) if math.isfinite(f.mean) else math.inf)
    _log(finalists, spec=spec, uri=uri, parent=parent, seeds=seeds)
    if not options.quiet:
        for rank, f in enumerate(finalists, 1):
            sd = f" (sd {f.sd:.4f})" if math.isfinite(f.sd) else ""
            print(f"  finalist {rank}: {f.trial.name}: mean {spec.metric} {f.mean:.4f}{sd} over {len(f.values)} "
                  f"seeds (search value {f.trial.metrics.get(spec.metric, math.nan):.4f})", flush=True)
    return finalists


def _log(finalists: list[Finalist], *, spec: Any, uri: str, parent: Any, seeds: list[int]) -> None:
    rows = []
    for rank, f in enumerate(finalists, 1):
        has_mean = math.isfinite(f.mean)
        tracking.log_finalist(uri, f.trial.run_id, metric=spec.metric, mean=f.mean, sd=f.sd, n=len(f.values),
                              rank=rank if has_mean else None, seeds=seeds)
        rows.append({"rank": rank if has_mean else None, "trial": f.trial.name, "run_id": f.trial.run_id,
                     "real_only": query.is_real_only(f.trial), "search_value": f.trial.metrics.get(spec.metric),
                     "search_completed": f.trial.completed, f"{spec.metric}_mean": f.mean, f"{spec.metric}_sd": f.sd,
                     "seeds": len(f.values)})
    tracking.log_ranking(parent, rows)
