"""The search's background Ray tasks, in a module of their own: a Ray worker imports the module that defines
a remote function before running it, and this one imports nothing heavy at the top (runner.py, their caller,
pulls in Tune, Optuna and MLflow: seconds of CPU the first trials' workers need at the same time).

- `reference_task` trains (or loads) the reference classifier behind the trials for the CPU.
- `warm_task` imports what the finalists' seeds import (torch, the training pipeline, MLflow's SQL store)
  into an idle worker, behind the trials, so that the first finalist seed finds a warm worker when the
  trials end (the reference task's worker warms itself the same way once its file is made).

Both run their work in a thread of lowered priority (Linux's nice value is per thread), never the worker's
own thread: a worker keeps its thread's nice value, and the finalists' seeds that run in it later must not
inherit a low priority.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ganmix.datasets import ImageDataset

log = logging.getLogger(__name__)
T = TypeVar("T")

# Behind the trials for the CPU: the first trials never need the reference, later ones wait for it idle. Not
# the lowest priority: a finalist seed that needs a module the warming thread is still importing waits for it.
BACKGROUND_NICE = 10
# What a finalist's seed (confirm_task.run_seed) imports beyond a bare worker, heaviest first.
WARM_MODULES = ("ganmix.search.recipe_run", "mlflow.store.tracking.sqlalchemy_store", "ganmix.search.confirm_task")


def reference_task(dataset: ImageDataset, folder: str, *, warm: bool = False) -> bytes | None:
    """On a Ray worker: the reference file of `dataset`, loaded from `folder` or trained into it; None when
    that failed (the trials then train their own, with the same pinned recipe). `warm`: afterwards, warm
    this worker for the finalists, in a thread that outlives the task (the file is not kept waiting)."""

    def work() -> bytes | None:
        import torch

        from ganmix.models.reference import reference_bytes

        torch.set_num_threads(1)  # at most one core from the trials (recipe_run sets its own per run)
        try:
            return reference_bytes(dataset, cache_dir=folder)
        except Exception:  # noqa: BLE001 - the search can go on without it
            log.exception("training the reference classifier failed; trials will train their own")
            return None

    payload = run_niced(BACKGROUND_NICE, work)
    if warm:
        run_niced(BACKGROUND_NICE, _import_warm_modules, wait=False)
    return payload


def warm_task() -> None:
    """On an idle Ray worker: import the finalists' modules in a thread left running (the worker is free at
    once: a task that held it until the imports were done could make Ray start another worker instead)."""
    run_niced(BACKGROUND_NICE, _import_warm_modules, wait=False)


def _import_warm_modules() -> None:
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a failure is only a slower finalist; its own import says why
            log.debug("warming %s failed", name, exc_info=True)
            return


def run_niced(increment: int, fn: Callable[[], T], *, wait: bool = True) -> T:
    """`fn()` in a thread whose nice value is `increment` above this process's: its result or its error
    (`wait=False`: the thread is left running, None returned)."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
        except (OSError, AttributeError):  # not Linux, or not allowed: at the usual priority
            pass
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="ganmix-niced", daemon=True)
    thread.start()
    if not wait:
        return None  # type: ignore[return-value]
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
