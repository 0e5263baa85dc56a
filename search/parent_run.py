"""A search's parent MLflow run: its name chosen (under a lock), opened with the search's params, spec and data,
reopened on resume, and closed with its trials table, best recipe and final best value."""

from __future__ import annotations

from typing import Any

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


def unused_name(uri: str, experiment_id: str, name: str) -> str:
    """`name`, or `name-2`, `name-3`, ... when a search of that name exists already."""
    candidate, number = name, 1
    while query.find_search(uri, candidate, experiment_id=experiment_id) is not None:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def open_parent(uri: str, experiment_id: str, *, spec: SearchSpec, dataset: ImageDataset, name: str,
                resume: bool) -> runs.RunLogger:
    if resume:
        found = query.find_search(uri, name, experiment_id=experiment_id)
        if found is None:
            raise store.TrackingError(f"no search named {name!r} in experiment {experiment_id} at {uri}; "
                                      "nothing to resume")
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
    return best
