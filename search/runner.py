"""Tuner wiring: Ray Tune + OptunaSearch (TPE, seeded) + ASHA over classifier epochs, logged to MLflow."""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from ganmix.datasets import ImageDataset
from ganmix.search import preflight
from ganmix.models.metrics import metric_info, test_counterpart
from ganmix.search.preflight import load_search_data
from ganmix.search.ray_start import start_ray_beside
from ganmix.search.ray_internals import optuna_study, replace_restored_callbacks, tune_actors_in_prestarted_workers
from ganmix.search.parent_run import finish_parent, name_lock, open_parent, undo_reopen, unused_name
from ganmix.search.finalists import has_stage as has_finalists, run_stage as run_finalists
from ganmix.search.progress import SearchProgress, quiet_libraries, result_rows
from ganmix.search.searcher import ConstrainedOptunaSearch
from ganmix.search.spec import SearchSpec
from ganmix.search.space import BASELINE_ATTR, DefineByRun, IntDim, CategoricalDim, FloatDim
from ganmix.search.trainable import (
    ReferenceSource, SearchCallback, TrialContext, event_handlers, journal_path, one_line_trial_errors, run_trial,
)
from ganmix.tracking import query, runs, store
from ganmix.tracking.describe import SearchDescriber, describe_experiment, share_view
from ganmix.tracking.inputs import split_arrays
from ganmix.tracking.figures import log_study_figures, log_trials_table

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How and where a search runs (not what it searches): flags, not spec."""

    results_dir: Path = Path("ganmix-results")
    tracking_uri: str | None = None
    address: str | None = None  # "auto" joins a running Ray cluster
    storage: str | None = None  # Tune storage (a folder or s3://...); default <results_dir>/ray
    data_dir: Path | None = None
    resume: bool = False
    max_failures: int = 2
    sample_metrics: bool = True
    quiet: bool = False
    verbose: bool = False  # Ray's, Optuna's and MLflow's own console output
    time_budget_s: float | None = None  # Tune's time_budget_s: stop starting and running trials after it



@dataclass(frozen=True)
class SearchOutcome:
    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    best: query.TrialSummary | None
    num_trials: int
    num_errors: int
    budget_ended: bool = False  # the time budget ran out before every trial ran
    first_error: str | None = None  # the error of the first failed trial, as its MLflow run records it


def run_search(spec: SearchSpec, options: RunOptions, *, dataset: ImageDataset | None = None,
               weights: dict[str, bytes] | None = None, ready: StoreReady | None = None,
               background: Background | None = None) -> SearchOutcome:
    """Run a search; `dataset` is the one preflight.check_search_data returned (None: loaded here, a missing
    MedMNIST file downloaded), `weights` fetch_search_weights' (None: fetched here), `ready` the store that
    open_search_store opened while Ray started (None: both done here; `dataset` is then required),
    `background` the tasks start_background started once Ray was up (None: started here)."""
    quiet_libraries(options.verbose)
    preflight.check_spec(spec, sample_metrics=options.sample_metrics)  # space values, before any work
    if weights is None:  # ImageNet weights: fetched once, before Ray starts, and shipped to every trial
        from ganmix.search.preflight.weights import fetch_search_weights

        weights = fetch_search_weights(spec)
    if ready is None:
        ready, dataset, background = _start_up(spec, options, dataset)
    elif dataset is None:
        raise ValueError("run_search: a search whose store was opened beforehand needs its dataset")
    uri, experiment_id = ready.uri, ready.experiment_id
    describe_experiment(uri, experiment_id, dataset.name)
    name = spec.name or f"{store.experiment_name(spec.dataset).split('/')[-1]}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = _storage_path(options)
    cache_dir = str((options.results_dir / "cache").resolve())
    if options.address not in (None, "local"):  # a trial no node can hold would wait forever
        preflight.check_cluster_resources(spec, options.address)
    # The per-data-set reference classifier: loaded from the user cache or trained by a Ray task in the
    # background (only the trials that measure samples wait for it, inside the trial); a worker warmed for
    # the finalists.
    if background is None:
        background = start_background(spec, dataset, address=options.address, sample_metrics=options.sample_metrics)
    reference = background.reference
    with name_lock(uri):  # two searches started in the same second must not share a default name
        if spec.name is None and not options.resume:
            name = unused_name(uri, experiment_id, name)
        if options.resume:  # before the parent's reopening closes running trials as killed
            _replay_journal(uri, journal_path(cache_dir, experiment_id, name))
        parent = open_parent(uri, experiment_id, spec=spec, dataset=dataset, name=name, resume=options.resume,
                             storage=storage)
    try:
        if options.data_dir is not None and not options.resume:  # `ganmix confirm` reloads the same data
            parent.set_tags({runs.DATA_DIR: str(Path(options.data_dir).expanduser().resolve())})
        if not options.resume:  # what `--resume NAME` alone continues with
            parent.set_tags({runs.SAMPLE_METRICS: str(options.sample_metrics).lower()})
        if not options.resume:  # the parent's Dataset column: the real splits the search ran on
            parent.log_datasets(split_arrays(dataset), name=dataset.name)
        share_view(uri, experiment_id, metric=spec.metric)
        describer = SearchDescriber(parent, experiment_id, spec.metric, dataset.name, name)
        progress = SearchProgress(spec.trials, spec.metric, quiet=options.quiet)
        tuner, callback, study = _build_tuner(spec, options, dataset, parent, uri=uri, experiment_id=experiment_id,
                                              name=name, storage=storage, cache_dir=cache_dir, reference=reference, weights=weights,
                                              progress=progress, describer=describer)
    except BaseException as exc:  # a crash or Ctrl-C during set-up: the parent run must not stay RUNNING
        if options.resume:  # a failed resume changes nothing: the parent as it was before (finished or killed)
            raise undo_reopen(parent, exc, name=name) from None
        killed = isinstance(exc, KeyboardInterrupt)
        parent.finish("KILLED" if killed else "FAILED",
                      error=f"search set-up {'interrupted' if killed else 'failed'}: {type(exc).__name__}: {exc}")
        raise
    return _fit(tuner, callback, spec=spec, options=options, parent=parent, uri=uri, experiment_id=experiment_id, name=name,
                progress=progress, describer=describer, study=study)


@dataclass(frozen=True)
class StoreReady:
    """The search's store, opened (created, migrated) and its experiment made: `ganmix search` does it
    beside Ray's start (ray_start.start_ray_beside) and hands it to run_search."""

    uri: str
    experiment_id: str


def open_search_store(spec: SearchSpec, options: RunOptions) -> StoreReady:
    uri = store.resolve_tracking_uri(options.tracking_uri, options.results_dir)
    store.check_reachable(uri)  # before any training
    return StoreReady(uri=uri, experiment_id=store.ensure_experiment(uri, spec.dataset))


def _start_up(spec: SearchSpec, options: RunOptions,
              dataset: ImageDataset | None) -> tuple[StoreReady, ImageDataset, Background | None]:
    """Open the store and load the data while Ray starts (an in-process caller's search; `ganmix search`
    has done this beside Ray's start itself). Errors keep their order: store, data, Ray."""
    early = None if dataset is None else lambda: start_background_early(
        spec, dataset, address=options.address, sample_metrics=options.sample_metrics)
    (ready, loaded), background = start_ray_beside(
        lambda: (open_search_store(spec, options), dataset if dataset is not None
                 else load_search_data(spec, options.data_dir)),
        address=options.address, verbose=options.verbose, then=early)
    return ready, loaded, background


@dataclass(frozen=True)
class Background:
    """The search's background Ray tasks, started (start_background): the reference classifier's source as
    the trials take it, None when they need none."""

    reference: ReferenceSource | None


def start_background_early(spec: SearchSpec, dataset: ImageDataset, *, address: str | None,
                           sample_metrics: bool) -> Background | None:
    """start_background as soon as Ray is up, while the store is still being opened (the second core is free
    then); nothing on a cluster (None), whose resources are judged first: run_search starts them after that."""
    if address not in (None, "local"):
        return None
    return start_background(spec, dataset, address=address, sample_metrics=sample_metrics)


def _needs_reference(spec: SearchSpec, sample_metrics: bool) -> bool:
    base = spec.base_recipe()
    return sample_metrics or "filter_threshold" in spec.space or base.filter_threshold > 0


def _build_tuner(spec: SearchSpec, options: RunOptions, dataset: ImageDataset, parent: runs.RunLogger, *,
                 uri: str, experiment_id: str, name: str, storage: str, cache_dir: str, reference: ReferenceSource | None,
                 weights: dict[str, bytes],
                 progress: SearchProgress, describer: SearchDescriber) -> tuple[Any, SearchCallback, Any]:
    from ray import tune

    from ganmix.search.scheduler import ArmASHAScheduler, ArmTally, grace_for
    from ganmix.search.searcher import make_sampler, real_only_share

    tune_actors_in_prestarted_workers()
    context = TrialContext(
        tracking_uri=uri, experiment_id=experiment_id, parent_run_id=parent.run_id, search_name=name,
        metric=spec.metric, cache_dir=cache_dir,
        cpus_per_trial=spec.cpus_per_trial, sample_metrics=options.sample_metrics, bounds=spec.bounds,
    )
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, dataset=dataset, context=context, reference=reference, weights=weights),
        {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial},
    )
    callback = SearchCallback(context=context, parent=parent, progress=progress, describer=describer)
    # Before the SearchCallback, so the console's line for a finished trial already counts it in its arm.
    tally = ArmTally(parent=parent, progress=progress)
    study = None
    run_config = tune.RunConfig(
        name=name, storage_path=storage, verbose=0, callbacks=[tally, callback],
        failure_config=tune.FailureConfig(max_failures=options.max_failures),
    )
    experiment_path = f"{storage.rstrip('/')}/{name}"
    if options.resume:
        parent_run = runs.get_run(uri, parent.run_id)
        callback.resume_from(parent_run)
        tally.resume_from(parent_run)
        tuner = tune.Tuner.restore(experiment_path, trainable, resume_unfinished=True, resume_errored=False)
        replace_restored_callbacks(tuner, [tally, callback])  # not the interrupted driver's stale ones
    else:
        study_storage = optuna.storages.InMemoryStorage()
        study = optuna.create_study(storage=study_storage, study_name=name,
                                    direction=metric_info(spec.metric).direction)
        study.enqueue_trial({}, user_attrs={BASELINE_ATTR: True})  # the real-only baseline goes first
        baseline = spec.baseline_recipe().to_dict()
        searcher = ConstrainedOptunaSearch(
            space=DefineByRun(spec.space, spec.generator_space, spec.fixed_config(), baseline),
            metric=spec.metric, mode=spec.mode, storage=study_storage, study_name=name,
            sampler=make_sampler(trials=spec.trials, seed=spec.seed), bounds=spec.bounds,
            real_only_share=real_only_share(spec),
        )
        max_t = _max_epochs(spec)
        # One set of ASHA rungs per arm kind: real-only and generator recipes each keep their finalists.
        scheduler = ArmASHAScheduler(time_attr="training_iteration", max_t=max_t,
                                     grace_period=grace_for(max_t, spec.grace_period, spec.reduction_factor),
                                     reduction_factor=spec.reduction_factor)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(metric=spec.metric, mode=spec.mode, search_alg=searcher, scheduler=scheduler,
                                        num_samples=spec.trials, max_concurrent_trials=spec.max_concurrent,
                                        # A trial process costs seconds to start (torch, ray imports); reuse it.
                                        reuse_actors=True, time_budget_s=options.time_budget_s),
            run_config=run_config,
        )
    return tuner, callback, study


def _fit(tuner: Any, callback: SearchCallback, *, spec: SearchSpec, options: RunOptions, parent: runs.RunLogger,
         uri: str, experiment_id: str, name: str, progress: SearchProgress, describer: SearchDescriber,
         study: Any) -> SearchOutcome:
    status, error, budget_ended = "FINISHED", None, False
    figures = _StudyFigures(parent, study) if study is not None else None
    one_line_trial_errors()
    try:
        fit_started = time.monotonic()
        grid = tuner.fit()
        _drain(callback)  # what the trials' ends wrote goes in before any clean-up below reads the store
        if _interrupted(callback, grid, spec.trials):
            # Tune's time budget counts from its first step, so it can only have run out if this much passed.
            budget = options.time_budget_s
            budget_ended = budget is not None and time.monotonic() - fit_started >= budget
            if not budget_ended:
                # Tune catches the first Ctrl+C (SIGINT) itself: it stops the trials, saves the experiment
                # and returns normally, so an interrupted search is only visible in its unfinished trials.
                raise KeyboardInterrupt
            # Trials Tune stopped at the budget never report an end: close their runs here.
            runs.close_running_children(uri, experiment_id, parent.run_id, status="KILLED",
                                        reason=f"stopped: the search's time budget of {budget:g} s ran out")
            parent.set_tags({runs.STOPPED_BY: "time_budget"})
        else:  # every trial ran: re-evaluate the finalists over more seeds (search/finalists.py)
            run_finalists(spec=spec, options=options, uri=uri, experiment_id=experiment_id, parent=parent,
                          beside=figures.draw if figures is not None else None)
    except KeyboardInterrupt:
        from ganmix.search.signals import closing

        closing()  # a second Ctrl-C must not cut the closing of the runs short
        _drain(callback)  # a trial the driver saw finish must not be closed as killed below
        status, error = "KILLED", "search interrupted; continue it with --resume " + name
        runs.close_running_children(uri, experiment_id, parent.run_id, status="KILLED",
                                    reason="interrupted with the search driver; rerun on resume")
        if not options.quiet:
            print(f"\nsearch {name} interrupted; continue it with: ganmix search --resume {name} "
                  "(same --results-dir, --storage and --tracking-uri)", file=sys.stderr, flush=True)
        raise
    except BaseException as exc:  # the search itself broke: say so on the parent, not FINISHED
        _drain(callback)
        status, error = "FAILED", f"search failed: {type(exc).__name__}: {exc}"
        runs.close_running_children(uri, experiment_id, parent.run_id, status="FAILED", reason=error)
        raise
    finally:
        progress.close()
        try:  # the final description, table and plots, through the parent's logger before it closes
            summaries = describer.refresh(done=True)
            if status == "FINISHED":
                log_trials_table(parent, summaries, spec.metric)
                if figures is None and options.resume:  # the restored searcher's study, saved with the experiment
                    saved = _saved_study(f"{_storage_path(options).rstrip('/')}/{name}")
                    figures = _StudyFigures(parent, saved) if saved is not None else None
                if figures is not None:
                    figures.finish()
        finally:
            callback.writer.close()
            best = finish_parent(parent, uri, experiment_id, spec, status=status, error=error,
                                  step=callback.results)
        if status == "FINISHED":
            progress.summary(*result_rows(summaries, spec.metric), test_metric=test_counterpart(spec.metric))
    failed = runs.child_runs(uri, experiment_id, parent.run_id, extra_filter="attributes.status = 'FAILED'")
    first_error = next((r.data.tags[runs.ERROR] for r in failed if runs.ERROR in r.data.tags), None)
    return SearchOutcome(name=name, tracking_uri=uri, experiment_id=experiment_id, parent_run_id=parent.run_id,
                         best=best, num_trials=len(grid), num_errors=grid.num_errors, budget_ended=budget_ended,
                         first_error=first_error)


class _StudyFigures:
    """Optuna's plots of the finished study on the parent run, drawn once: while the finalists' seeds run
    where there is a finalists stage (by the driver's seed slot before its first seed, so that Ray's slots
    take the first seeds meanwhile), else at the search's end, which raises their error as before."""

    def __init__(self, parent: runs.RunLogger, study: Any) -> None:
        self._parent, self._study = parent, study
        self._lock = threading.Lock()
        self._drawn = False
        self._error: Exception | None = None

    def draw(self) -> None:
        with self._lock:
            if self._drawn:
                return
            self._drawn = True
            try:
                log_study_figures(self._parent, self._study)
            except Exception as exc:  # noqa: BLE001 - raised by finish(), in the search's own thread
                self._error = exc

    def finish(self) -> None:
        self.draw()
        if self._error is not None:
            raise self._error


def _drain(callback: SearchCallback) -> None:
    """Wait for the driver's tracking writer; one that cannot catch up (an outage) leaves the rest in its
    journal, applied by `--resume`."""
    if not callback.writer.flush(runs.RETRY_SECONDS_FOR_CLOSE):
        log.warning("the tracking writer did not catch up; `ganmix search --resume` applies what it left")


def _replay_journal(uri: str, journal: Path) -> None:
    """Apply the tracking events an interrupted driver queued but never wrote (SIGKILL, a second Ctrl-C)."""
    if not journal.is_file():
        return
    writer = runs.EventWriter(journal, event_handlers(uri))
    replayed = writer.replay()
    writer.close()
    if replayed:
        log.info("applied %d tracking events the interrupted driver left in %s", replayed, journal)


def _saved_study(experiment_path: str) -> Any | None:
    """The Optuna study of a resumed search, from the searcher state Tune saved with its experiment (the
    resumed driver never held it itself); None when there is none to read."""
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch()
    try:
        searcher.restore_from_dir(experiment_path)
    except Exception as exc:  # the plots are a convenience; the search itself succeeded
        log.debug("no saved study in %s: %s", experiment_path, exc)
        return None
    return optuna_study(searcher)


def start_background(spec: SearchSpec, dataset: ImageDataset, *, address: str | None,
                     sample_metrics: bool) -> Background:
    """Start the search's background Ray tasks: the reference classifier when the trials need one, and, on
    a local Ray with a finalists stage, one worker warmed for the finalists (search/reference_task.py): the
    reference task's own worker, else a worker of its own. One: two tasks that leave a thread running can
    land in the same worker (Ray hands a finished task's worker the next task)."""
    import ray

    from ganmix.search.reference_task import warm_task

    warm = address in (None, "local") and has_finalists(spec)
    reference, warmed = None, False
    if _needs_reference(spec, sample_metrics):
        reference, warmed = _reference_in_background(dataset, warm=warm)
    if warm and not warmed:
        ray.remote(num_cpus=0, max_retries=0)(warm_task).options(name="ganmix-warm").remote()
    return Background(reference=reference)


def _reference_in_background(dataset: ImageDataset, *, warm: bool) -> tuple[ReferenceSource, bool]:
    """The reference classifier's file as an ObjectRef for the trials: read from the user cache when it is
    there, else loaded or trained by a Ray task that runs beside the first trials (the first one, the
    real-only baseline, never needs it); with `warm`, that task's worker is warmed for the finalists
    afterwards (True beside the file then). A task that fails yields None: trials then train their own."""
    import ray

    from ganmix.models.reference_files import reference_dir, reference_path
    from ganmix.search.reference_task import reference_task

    folder = str(reference_dir())  # the driver's cache, also where the task writes (one machine: one file)
    path = reference_path(dataset, folder)
    if path.is_file():
        return ReferenceSource(file=ray.put(path.read_bytes())), False
    # No CPU reserved: it must not hold back a trial; one thread, so it takes at most one core from them.
    task = ray.remote(num_cpus=0, max_retries=1)(reference_task).options(name="ganmix-reference")
    return ReferenceSource(file=task.remote(dataset, folder, warm=warm)), warm


def _storage_path(options: RunOptions) -> str:
    """Tune storage as Tune needs it: a URI (s3://...) as given, a local folder made absolute
    (pyarrow rejects a relative path, and a `~` would not be expanded)."""
    if options.storage and "://" in options.storage:
        return options.storage
    folder = Path(options.storage).expanduser() if options.storage else options.results_dir / "ray"
    return str(folder.resolve())


def _interrupted(callback: SearchCallback, grid: object, trials: int) -> bool:
    """True when fit() returned before every trial ran: Tune's loop only ends early on a signal.

    Tune's clean-up marks the trials it stops TERMINATED, so the statuses in `grid` look finished;
    the callback kept them as of the last step of the loop.
    """
    if callback.last_step is None:  # no step ran: nothing was left to do, or the signal came first
        done = grid.num_terminated + grid.num_errors  # type: ignore[attr-defined]
        return done < len(grid) or len(grid) < trials  # type: ignore[arg-type]
    unfinished, seen = callback.last_step
    return unfinished > 0 or seen < trials


def _max_epochs(spec: SearchSpec) -> int:
    dim = spec.space.get("classifier_epochs")
    if isinstance(dim, (IntDim, FloatDim)):
        return int(dim.high)
    if isinstance(dim, CategoricalDim):
        return int(max(dim.choices))
    return spec.base_recipe().classifier_epochs
