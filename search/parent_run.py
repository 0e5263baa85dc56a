"""A search's parent MLflow run: its name chosen (under a lock), opened with the search's params, spec and data,
reopened on resume, and closed with its trials table, best recipe and final best value."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ganmix.datasets import ImageDataset
from ganmix.search.spec import SearchSpec
from ganmix.tracking import query, runs, store
from ganmix.tracking.runs import FINGERPRINT, KIND, METRIC, MODE, SEARCH_NAME


def name_lock(uri: str) -> Any:
    """Held while a search name is chosen and its parent run created; a local store's lock file (a server's
    searches may start on other machines: there a taken name is refused by open_parent)."""
    import contextlib

    from ganmix.models.files import file_lock

    db = store.local_store_file(uri)
    return file_lock(db.with_name(db.name + ".names")) if db is not None else contextlib.nullcontext()


# The per-search locks this process holds (parent run id -> lock): a search is run by one process at a time.
_search_locks: dict[str, Any] = {}


def search_lock_file(storage: str | Path | None, name: str) -> Path | None:
    """Where the lock of search `name` lives: `<Tune storage>/<name>.lock` (default storage RESULTS/ray);
    None for remote storage (s3://...), where no local lock can keep another machine out."""
    text = str(storage) if storage is not None else None
    if text and text.startswith("file://"):
        text = urlsplit(text).path
    elif text and "://" in text:
        return None
    return (Path(text).expanduser() / f"{name}.lock").absolute() if text else None


def check_search_free(storage: str | Path | None, name: str) -> None:
    """Fail fast (before Ray starts) when another process is running or resuming search `name`; the lock
    itself is taken by open_parent."""
    path = search_lock_file(storage, name)
    if path is None or not path.exists():
        return
    from filelock import FileLock, Timeout

    try:
        with FileLock(path, timeout=0):
            pass
    except Timeout:
        raise store.TrackingError(_busy_line(path, name)) from None


def _busy_line(path: Path, name: str) -> str:
    from ganmix.tracking.claims import holders_text

    return (f"search {name!r} is being run by {holders_text(path)}; a search runs in one process at a time: "
            "wait for that one to end (or stop it), or pick another --name")


def hold_search(storage: str | Path | None, name: str) -> Any:
    """Take search `name`'s lock (None for remote storage); another process holding it is one line naming
    that process. Held until finish_parent (or the end of this process: the OS releases it)."""
    path = search_lock_file(storage, name)
    if path is None:
        return None
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise store.TrackingError(_busy_line(path, name)) from None
    return lock


def _release(lock: Any) -> None:
    if lock is not None:
        lock.release()


def unused_name(uri: str, experiment_id: str, name: str) -> str:
    """`name`, or `name-2`, `name-3`, ... when a search of that name exists already."""
    candidate, number = name, 1
    while query.find_search(uri, candidate, experiment_id=experiment_id) is not None:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


# A resumed search's parent run as it was before the resume reopened it (run id -> MLflow run): a resume
# that fails before its search runs puts it back (undo_reopen).
_reopened: dict[str, Any] = {}


def open_parent(uri: str, experiment_id: str, *, spec: SearchSpec, dataset: ImageDataset, name: str,
                resume: bool, storage: str | None = None) -> runs.RunLogger:
    """The search's parent run, new or reopened; `storage` (Tune's, local) holds the search's lock, taken
    here for as long as this process runs the search."""
    lock = hold_search(storage, name)
    try:
        parent = _open_parent(uri, experiment_id, spec=spec, dataset=dataset, name=name, resume=resume)
    except BaseException:
        _release(lock)
        raise
    _search_locks[parent.run_id] = lock
    return parent


def _open_parent(uri: str, experiment_id: str, *, spec: SearchSpec, dataset: ImageDataset, name: str,
                 resume: bool) -> runs.RunLogger:
    if resume:
        found = query.find_search(uri, name, experiment_id=experiment_id)
        if found is None:
            raise store.TrackingError(f"no search named {name!r} in experiment {experiment_id} at {uri}; "
                                      "nothing to resume")
        _reopened[found.info.run_id] = found
        parent = runs.reopen_run(uri, found.info.run_id)
        # Trials interrupted with the driver stay in MLflow, marked killed; their reruns are new children.
        runs.close_running_children(uri, experiment_id, found.info.run_id, status="KILLED",
                                    reason="interrupted with the search driver; rerun on resume")
        return parent
    if query.find_search(uri, name, experiment_id=experiment_id) is not None:
        raise store.TrackingError(f"a search named {name!r} already exists in {uri}; pick another --name "
                                  f"or continue it with --resume {name}")
    parent = runs.start_run(uri, experiment_id, name=name, tags={
        KIND: "search", SEARCH_NAME: name, FINGERPRINT: dataset.fingerprint, METRIC: spec.metric, MODE: spec.mode,
        runs.NOTE: f"ganmix search over {dataset.summary()}",
    })
    parent.log_params({"dataset": spec.dataset, "dataset_fingerprint": dataset.fingerprint, "trials": spec.trials,
                       "metric": spec.metric, "mode": spec.mode, "seed": spec.seed, "image_size": dataset.image_size,
                       "train_per_class": spec.train_per_class or "",
                       "class_fraction": ",".join(f"{k}={v}" for k, v in spec.class_fraction.items()),
                       "train_size": len(dataset.train), "val_size": len(dataset.val), "test_size": len(dataset.test)})
    parent.log_text(spec.to_yaml(), "search_spec.yaml")
    parent.log_text(dataset.summary() + "\n" + dataset.description + "\n", "dataset.txt")
    return parent


def finish_parent(parent: runs.RunLogger, uri: str, experiment_id: str, spec: SearchSpec, *, status: str,
                   error: str | None, step: int) -> query.TrialSummary | None:
    """Close the parent: the trials table, the best recipe, and the final `best_<metric>` at `step` (the
    results received, the step SearchCallback logs it at while the search runs)."""
    summaries = query.trial_summaries(uri, experiment_id, parent.run_id)
    parent.log_text(query.trials_csv(summaries, spec.metric), "trials.csv")
    best = query.pick_best(summaries, spec.metric, uri=uri)
    if best is not None:
        parent.log_text(best.recipe_yaml or "", "best_recipe.yaml")
        parent.set_tags({runs.BEST_RUN_ID: best.run_id})
        parent.log_metrics({f"best_{spec.metric}": best.metrics.get(spec.metric, float("nan"))}, step=step)
    parent.finish(status, error=error)
    _reopened.pop(parent.run_id, None)
    _release(_search_locks.pop(parent.run_id, None))
    return best


def undo_reopen(parent: runs.RunLogger, exc: BaseException, *, name: str) -> BaseException:
    """A resume that failed before its search ran (a damaged Tune state, Ctrl-C during set-up) changes nothing:
    the parent run gets back its status, end time and error tag. Returns the error to raise: one line for
    anything but an interruption."""
    before = _reopened.pop(parent.run_id, None)
    if before is not None:
        mlflow_client = store.client(parent.uri)
        store.retry(mlflow_client.set_terminated, parent.run_id, status=before.info.status,
                    end_time=before.info.end_time)
        if runs.ERROR in before.data.tags:
            store.retry(mlflow_client.set_tag, parent.run_id, runs.ERROR, before.data.tags[runs.ERROR])
    _release(_search_locks.pop(parent.run_id, None))
    if isinstance(exc, (KeyboardInterrupt, store.TrackingError)):
        return exc
    return store.TrackingError(f"--resume {name}: the search cannot be resumed ({store.one_line(exc)}); it is "
                               "left as it was")
