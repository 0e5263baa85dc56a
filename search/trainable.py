"""The Tune trial and the driver-side callback that keeps MLflow consistent with Tune."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import ray
import torch
from ray import tune
from ray.tune import Callback

from ganmix.datasets import ImageDataset
from ganmix.search.metrics import is_better
from ganmix.search.pipeline import execute_recipe
from ganmix.search.recipe import Recipe
from ganmix.search.space import split_options
from ganmix.tracking import runs
from ganmix.tracking.runs import BASELINE, COMPLETED, KIND, METRIC, SEARCH_NAME, TRIAL_ID


@dataclass(frozen=True)
class TrialContext:
    """Where a trial logs; travels to workers with tune.with_parameters (not part of the config)."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    search_name: str
    metric: str
    cache_dir: str
    cpus_per_trial: float
    sample_metrics: bool = True


def recipe_from_config(config: dict[str, Any]) -> Recipe:
    fields, options = split_options(config)
    return Recipe.from_dict({**fields, "generator_options": options}, source="trial config")


def run_trial(config: dict[str, Any], *, dataset: ImageDataset, context: TrialContext) -> None:
    """One Tune trial: its own nested MLflow run, logged from the worker it runs on."""
    tune_ctx = tune.get_context()
    trial_id, trial_name = tune_ctx.get_trial_id(), tune_ctx.get_trial_name()
    torch.set_num_threads(max(1, int(context.cpus_per_trial)))
    # A retried trial (lost worker) supersedes its earlier attempt's run.
    runs.close_running_children(context.tracking_uri, context.experiment_id, context.parent_run_id,
                                status="KILLED", reason="superseded by a retry of this trial", trial_id=trial_id)
    recipe = recipe_from_config(config)
    logger = runs.start_run(
        context.tracking_uri, context.experiment_id, name=trial_name, parent_run_id=context.parent_run_id,
        tags={KIND: "trial", TRIAL_ID: trial_id, SEARCH_NAME: context.search_name, METRIC: context.metric,
              BASELINE: str(recipe.baseline).lower(), "ganmix.node": ray.get_runtime_context().get_node_id()},
    )
    logger.log_params(recipe.to_params())
    logger.log_text(recipe.to_yaml(), "recipe.yaml")
    device = torch.device("cuda") if ray.get_gpu_ids() and torch.cuda.is_available() else torch.device("cpu")
    completed = False

    def report(metrics: dict[str, float]) -> None:
        nonlocal completed
        if metrics["epoch"] >= recipe.classifier_epochs:
            # Everything is logged by now; the scheduler may stop the trial inside this last report.
            completed = True
            logger.set_tags({COMPLETED: "true"})
        tune.report(metrics)

    try:
        execute_recipe(recipe, dataset, device=device, logger=logger, report=report,
                       cache_dir=context.cache_dir, sample_metrics=context.sample_metrics)
    except SystemExit:  # Tune stopping the trial unwinds the training thread this way
        if not completed:
            logger.set_tags({runs.EARLY_STOPPED: "true"})
        logger.finish("FINISHED")
        raise
    except BaseException as exc:
        logger.finish("FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    logger.finish("FINISHED")


class SearchCallback(Callback):
    """Runs on the driver: compact progress, best-so-far on the parent run, and MLflow clean-up
    for trials whose process cannot finish its own run (early-stopped, lost worker, errors)."""

    def __init__(self, *, context: TrialContext, mode: str, parent: runs.RunLogger, quiet: bool = False) -> None:
        self.context, self.mode, self.parent, self.quiet = context, mode, parent, quiet
        self.best: float | None = None
        self.best_trial: str | None = None
        self.started = time.monotonic()
        self.done = self.failed = self.running = 0
        self.results = 0
        self.start_times: dict[str, float] = {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.start_times[trial.trial_id] = time.monotonic()
        self._count(trials)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.context.metric)
        self.results += 1
        if isinstance(value, (int, float)) and not math.isnan(value) and is_better(value, self.best, self.mode):
            self.best, self.best_trial = float(value), trial.trial_id
            self.parent.log_metrics({f"best_{self.context.metric}": self.best}, step=self.results)
            self.parent.set_tags({"ganmix.best_trial": trial.trial_id, "ganmix.best_value": f"{self.best:.6g}"})
            self._print(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # An early-stopped trial's process is gone before it could close its run.
        self._close(trial, "FINISHED", reason=None)
        self._log_wall_time(trial)
        self._count(trials)
        self._print(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial, "FAILED", reason=f"trial errored: {_error_of(trial)}")
        self._count(trials)
        self._print(trials)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial, "KILLED", reason=f"worker failed, trial retried: {_error_of(trial)}")

    def _close(self, trial: Any, status: str, *, reason: str | None) -> None:
        ctx = self.context
        for run in runs.child_runs(ctx.tracking_uri, ctx.experiment_id, ctx.parent_run_id,
                                   extra_filter=f"tags.`{TRIAL_ID}` = '{trial.trial_id}' AND attributes.status = 'RUNNING'"):
            if status == "FINISHED" and run.data.tags.get(COMPLETED) == "true":
                runs.RunLogger(ctx.tracking_uri, run.info.run_id).finish("FINISHED")
            elif status == "FINISHED":
                runs.mark_early_stopped(ctx.tracking_uri, run.info.run_id)
            else:
                runs.RunLogger(ctx.tracking_uri, run.info.run_id).finish(status, error=reason)

    def _log_wall_time(self, trial: Any) -> None:
        """Trial wall time as the driver sees it (actor start to completion); minus the trial's own
        compute_seconds this is the per-trial overhead the benchmark reports."""
        started = self.start_times.pop(trial.trial_id, None)
        if started is None:
            return
        ctx = self.context
        for run in runs.child_runs(ctx.tracking_uri, ctx.experiment_id, ctx.parent_run_id,
                                   extra_filter=f"tags.`{TRIAL_ID}` = '{trial.trial_id}'"):
            runs.RunLogger(ctx.tracking_uri, run.info.run_id).log_metrics(
                {"trial_wall_seconds": time.monotonic() - started})

    def _count(self, trials: list) -> None:
        states = [t.status for t in trials]
        self.done = states.count("TERMINATED")
        self.failed = states.count("ERROR")
        self.running = states.count("RUNNING")

    def _print(self, trials: list) -> None:
        if self.quiet:
            return
        best = f"best {self.context.metric} {self.best:.4f} ({self.best_trial})" if self.best is not None else "no result yet"
        print(f"[{time.monotonic() - self.started:6.0f}s] trials: {self.done} done, {self.running} running, "
              f"{self.failed} failed | {best}", flush=True)


def _error_of(trial: Any) -> str:
    message = getattr(trial, "error_msg", None) or ""
    lines = [line for line in str(message).strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else "unknown error"
