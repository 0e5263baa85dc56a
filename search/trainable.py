"""The Tune trial and the driver-side callback that keeps MLflow consistent with Tune."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune import Callback

from ganmix.datasets import ImageDataset
from ganmix.models.metrics import BestSoFar, logged_name
from ganmix.search.constraints import Bound, is_feasible
from ganmix.search.recipe import Recipe
from ganmix.search.space import split_options
from ganmix.search.progress import SearchProgress
from ganmix.tracking import runs
from ganmix.tracking.describe import SearchDescriber
from ganmix.tracking.naming import run_name
from ganmix.tracking.runs import (
    BASELINE, BEST_TRIAL, BEST_VALUE, COMPLETED, ERROR, FEASIBLE, KIND, METRIC, NODE, RETRYABLE, SEARCH_NAME,
    TRIAL_ID, TUNE_TRIAL,
)


class NotRetried(RuntimeError):
    """Tune retried a trial whose earlier attempt failed in a way a rerun would only repeat."""


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
    bounds: tuple[Bound, ...] = ()  # sample-metric constraints of the search


@dataclass(frozen=True)
class ReferenceSource:
    """The search's reference classifier file, being loaded or trained by a background Ray task: `file` is
    that task's ObjectRef (of the file's bytes, None when it failed). Wrapped, because Tune puts every
    with_parameters value into the object store and Ray does not put a bare ObjectRef."""

    file: Any  # ray.ObjectRef[bytes | None]

    def attach(self, dataset: ImageDataset) -> None:
        """Let this process's reference_classifier() fetch the file when its cache lacks it: the trial waits
        for the task only when it needs sample metrics or a filter, never at its start."""
        from ganmix.models.reference import register_source

        register_source(dataset.fingerprint, self.fetch)

    def fetch(self) -> bytes | None:
        try:
            return ray.get(self.file)
        except Exception:  # noqa: BLE001 - a lost task: this process trains its own (same pinned recipe)
            logging.getLogger(__name__).exception("the search's reference classifier task failed")
            return None


def recipe_from_config(config: dict[str, Any]) -> Recipe:
    fields, options = split_options(config)
    return Recipe.from_dict({**fields, "generator_options": options}, source="trial config")


def run_trial(config: dict[str, Any], *, dataset: ImageDataset, context: TrialContext,
              reference: ReferenceSource | None = None, weights: dict[str, bytes] | None = None) -> None:
    """One Tune trial: its own nested MLflow run, logged from the worker it runs on.

    `reference` is the search's reference classifier task (see runner._reference_in_background): a trial
    that needs the classifier installs its file in this node's cache, so no node trains its own."""
    # Here, not at the top: the driver imports this module for Tune but never trains, and its Tune fit starts
    # sooner without the training stack (scikit-learn, the pipeline: about a second of CPU).
    from ganmix.search.recipe_run import NewRun, run_recipe

    tune_ctx = tune.get_context()
    trial_id = tune_ctx.get_trial_id()
    recipe = recipe_from_config(config)
    cache_dir = context.cache_dir
    if weights:  # the driver's ImageNet weights files (preflight/weights.py): no trial downloads
        from ganmix.models.pretrained import install_weights

        install_weights(weights)
    if reference is not None:
        reference.attach(dataset)
    if _settled_earlier(context, trial_id, recipe):
        return

    def report(logger: runs.RunLogger, metrics: dict[str, float]) -> None:
        if context.bounds and metrics["epoch"] == 1:  # sample metrics are known from the first report on
            logger.set_tags({FEASIBLE: str(is_feasible(context.bounds, metrics, real_only=recipe.real_only)).lower()})
        if metrics["epoch"] >= recipe.classifier_epochs:
            # Everything is logged by now; the scheduler may stop the trial inside this last report.
            logger.set_tags({COMPLETED: "true"})
        tune.report(metrics)

    tags = {KIND: "trial", TRIAL_ID: trial_id, SEARCH_NAME: context.search_name, METRIC: context.metric,
            BASELINE: str(recipe.baseline).lower(), NODE: ray.get_runtime_context().get_node_id(),
            TUNE_TRIAL: tune_ctx.get_trial_name()}
    # Tune stopping the trial unwinds the training thread with SystemExit: after an early stop by the
    # scheduler, or when the driver is interrupted. Only the driver knows which, so it closes the run
    # (SearchCallback.on_trial_complete: finished or early-stopped; run_search: killed).
    run_recipe(recipe, dataset, run=NewRun(context.tracking_uri, context.experiment_id, run_name(recipe), tags,
                                           parent_run_id=context.parent_run_id),
               cache_dir=cache_dir, sample_metrics=context.sample_metrics, report=report, log_inputs=True,
               cpus=context.cpus_per_trial, left_to_driver=(SystemExit,))


def _settled_earlier(context: TrialContext, trial_id: str, recipe: Recipe) -> bool:
    """Tune reruns a trial after a lost worker (a retry) or a resumed search. An attempt that completed
    before Tune heard of it is reported, not trained again (True); an unfinished one is superseded by this
    attempt; one that failed in a way a rerun would repeat is not run again (NotRetried)."""
    earlier = runs.child_runs(context.tracking_uri, context.experiment_id, context.parent_run_id,
                              extra_filter=f"tags.`{TRIAL_ID}` = '{trial_id}'")
    done = [r for r in earlier if r.info.status == "FINISHED" and r.data.tags.get(COMPLETED) == "true"]
    if done:
        tune.report(_final_result(runs.read_metrics(done[0]), recipe))
        return True
    failed = [r for r in earlier if r.info.status == "FAILED" and r.data.tags.get(RETRYABLE) == "false"]
    if failed:  # no new run: the trial's one failed run already says why
        raise NotRetried(f"trial {trial_id} is not run again: {failed[0].data.tags.get(ERROR, 'it failed')} "
                         f"(run {failed[0].info.run_id}); the same config and seed fail the same way")
    runs.close_running_children(context.tracking_uri, context.experiment_id, context.parent_run_id,
                                status="KILLED", reason="superseded by a rerun of this trial", trial_id=trial_id)
    return False


def _final_result(metrics: dict[str, float], recipe: Recipe) -> dict[str, float]:
    """The last result of an attempt that completed, as Tune and the searcher saw it (no test metrics)."""
    from ganmix.models.metrics import SAMPLE_METRICS

    kept = {k: v for k, v in metrics.items()
            if k.startswith("val_") or k in SAMPLE_METRICS or k in ("synthetic_count", "filter_kept_fraction")}
    return {**kept, "epoch": recipe.classifier_epochs}


class SearchCallback(Callback):
    """Runs on the driver: compact progress, best-so-far on the parent run, and MLflow clean-up
    for trials whose process cannot finish its own run (early-stopped, lost worker, errors).

    Tune calls it inside its control loop, so it only decides what to write and hands that to one background
    writer (tracking.runs.EventWriter: ordered, retried, journaled, flushed on exit); the console's progress
    and the best-so-far are kept in memory here."""

    def __init__(self, *, context: TrialContext, parent: runs.RunLogger, progress: SearchProgress | None = None,
                 describer: SearchDescriber | None = None, writer: runs.EventWriter | None = None) -> None:
        self.context, self.parent = context, parent
        self.progress, self.describer = progress, describer
        journal = journal_path(context.cache_dir, context.experiment_id, context.search_name)
        self.writer = writer if writer is not None else runs.EventWriter(
            journal, event_handlers(context.tracking_uri, describer))
        # Best over each trial's latest value: the same rule that picks the search's best recipe. Logged to the
        # parent as `best_<metric>` with step = results received so far (`results`), the one step convention.
        self.best = BestSoFar(context.metric)
        self.results = 0
        self.start_times: dict[str, float] = {}
        # (unfinished trials, trials) after Tune's latest step: the loop ends early only on a signal.
        self.last_step: tuple[int, int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state; the writer (a thread) stays with the driver.
        return {**self.__dict__, "writer": None}

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        # Read here, not from fit()'s result: Tune's clean-up after Ctrl+C marks stopped trials TERMINATED.
        self.last_step = (sum(t.status not in ("TERMINATED", "ERROR") for t in trials), len(trials))

    def resume_from(self, parent_run: Any) -> None:
        """Carry on from an interrupted search's parent run: its best so far and its step count."""
        tags, ctx = parent_run.data.tags, self.context
        value = tags.get(BEST_VALUE)
        if value is not None and tags.get(BEST_TRIAL):
            self.best.update(tags[BEST_TRIAL], float(value))
        history = runs.metric_history(ctx.tracking_uri, parent_run.info.run_id, f"best_{ctx.metric}")
        self.results = max((m.step for m in history), default=0)
        self._seed_progress = True  # the console counts the trials finished before, at Tune's first step

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        # Tune's restored trials, TERMINATED or ERROR before the interruption, never call back again.
        if getattr(self, "_seed_progress", False) and self.progress is not None:
            self._seed_progress = False
            self.progress.seed_finished([
                (_trial_name(t), "failed" if t.status == "ERROR" else
                 "stopped early" if _stopped_early(t) else "completed", _value(t, self.context.metric))
                for t in trials if t.status in ("TERMINATED", "ERROR")])

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.start_times[trial.trial_id] = time.monotonic()
        if self.progress is not None:
            self.progress.started_trial()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.context.metric)
        self.results += 1
        if isinstance(value, (int, float)) and self.best.update(trial.trial_id, float(value)):
            self.writer.submit("best", run_id=self.parent.run_id, metric=self.context.metric,
                               value=float(self.best.value), key=str(self.best.key), step=self.results)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # An early-stopped trial's process is gone before it could close its run.
        started = self.start_times.pop(trial.trial_id, None)
        self._close(trial, "FINISHED", reason=None,
                    wall_seconds=time.monotonic() - started if started is not None else None)
        self._finished(trial, "stopped early" if _stopped_early(trial) else "completed")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial, "FAILED", reason=f"trial errored: {_error_of(trial)}")
        self._finished(trial, "failed")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial, "KILLED", reason=f"worker failed, trial retried: {_error_of(trial)}")

    def _close(self, trial: Any, status: str, *, reason: str | None, wall_seconds: float | None = None) -> None:
        ctx = self.context
        self.writer.submit("close", experiment_id=ctx.experiment_id, parent_run_id=ctx.parent_run_id,
                           trial_id=trial.trial_id, status=status, reason=reason, wall_seconds=wall_seconds)

    def _finished(self, trial: Any, status: str) -> None:
        """One finished trial: the console's progress now; the parent's description (MLflow UI) by the writer."""
        if self.progress is not None:
            self.progress.finished_trial(_trial_name(trial), status=status, value=_value(trial, self.context.metric))
        self.writer.submit("describe")


def journal_path(cache_dir: str, experiment_id: str, name: str) -> Path:
    """The search's tracking journal: in its results folder (the parent of its cache folder), one per search."""
    return Path(cache_dir).parent / "journal" / f"{experiment_id}-{name}.jsonl"


def event_handlers(uri: str, describer: SearchDescriber | None = None) -> dict[str, Any]:
    """What the driver's tracking events do, applied by its EventWriter (and replayed on resume, with no
    describer: the resumed search's final refresh rewrites the description). Each is safe to apply twice."""

    def best(*, run_id: str, metric: str, value: float, key: str, step: int) -> None:
        parent = runs.RunLogger(uri, run_id)
        parent.log_metrics({f"best_{metric}": value}, step=step)
        parent.set_tags({BEST_TRIAL: key, BEST_VALUE: f"{value:.6g}"})

    def close(*, experiment_id: str, parent_run_id: str, trial_id: str, status: str, reason: str | None,
              wall_seconds: float | None = None) -> None:
        closed = close_trial(uri, experiment_id, parent_run_id, trial_id, status=status, reason=reason,
                             wall_seconds=wall_seconds)
        if describer is not None:
            for run, final in closed:
                describer.update(run, status=final)

    def describe() -> None:
        if describer is not None:
            describer.write()

    return {"best": best, "close": close, "describe": describe}


def close_trial(uri: str, experiment_id: str, parent_run_id: str, trial_id: str, *, status: str,
                reason: str | None, wall_seconds: float | None = None) -> list[tuple[Any, str]]:
    """Close the runs of one trial that its process could not close (early-stopped, lost worker, errors) and
    log the driver's wall time on the attempt that finished; one query. Returns (run, status now) of each of
    the trial's attempts."""
    attempts = runs.child_runs(uri, experiment_id, parent_run_id, extra_filter=f"tags.`{TRIAL_ID}` = '{trial_id}'")
    out = []
    for run in attempts:
        final = run.info.status
        if final == "RUNNING":
            if status == "FINISHED" and run.data.tags.get(COMPLETED) == "true":
                runs.RunLogger(uri, run.info.run_id).finish("FINISHED")
            elif status == "FINISHED":
                runs.mark_early_stopped(uri, run.info.run_id)
                run.data.tags[runs.EARLY_STOPPED] = "true"
            else:
                runs.RunLogger(uri, run.info.run_id).finish(status, error=reason)
            final = "FINISHED" if status == "FINISHED" else status
        # Trial wall time as the driver sees it (actor start to completion); minus the trial's own
        # compute_seconds this is the per-trial overhead the benchmark reports. A run completed before a
        # resume keeps the wall time it had.
        if final == "FINISHED" and wall_seconds is not None and "trial_wall_seconds" not in runs.read_metrics(run):
            runs.RunLogger(uri, run.info.run_id).log_metrics({"trial_wall_seconds": wall_seconds})
            run.data.metrics[logged_name("trial_wall_seconds")] = wall_seconds
        out.append((run, final))
    return out


def _value(trial: Any, metric: str) -> float | None:
    value = (trial.last_result or {}).get(metric)
    return float(value) if isinstance(value, (int, float)) else None


def _trial_name(trial: Any) -> str:
    try:
        return run_name(recipe_from_config(trial.config))
    except Exception:  # a config the recipe rejects: the trial failed for that; name it by its id
        return f"trial {trial.trial_id}"


def _stopped_early(trial: Any) -> bool:
    """The scheduler stopped it before its last classifier epoch."""
    epoch = (trial.last_result or {}).get("epoch")
    try:
        return epoch is not None and int(epoch) < recipe_from_config(trial.config).classifier_epochs
    except Exception:
        return False


class _OneLineTrialErrors(logging.Filter):
    """Tune logs every failed trial attempt with its whole (~45-line) traceback; the trial's MLflow run keeps
    the error, and the driver's output gets one line per attempt: which trial, and the error's last line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Trial task failed"):
            error = record.exc_info[1]
            cause = getattr(error, "cause", None) or error
            lines = str(cause).strip().splitlines()
            record.msg = f"{record.msg}: {type(cause).__name__}: {lines[-1] if lines else ''}"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def one_line_trial_errors() -> None:
    """Install _OneLineTrialErrors on Tune's controller logger (once)."""
    tune_logger = logging.getLogger("ray.tune.execution.tune_controller")
    if not any(isinstance(f, _OneLineTrialErrors) for f in tune_logger.filters):
        tune_logger.addFilter(_OneLineTrialErrors())


def _error_of(trial: Any) -> str:
    message = getattr(trial, "error_msg", None) or ""
    lines = [line for line in str(message).strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else "unknown error"
