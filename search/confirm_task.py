"""One recipe at one seed, as a Ray task with its own nested MLflow run: an (arm, seed) of a confirmation
(nested under the confirmation run) or a finalist's re-evaluation (nested under its trial's run).

A confirmation is stopped through `StopFlag`, never with `ray.cancel`: cancelling a running task races
with its completion in Ray's core worker (a RAY_CHECK crash of the driver, ray-project/ray#54798), and the
KeyboardInterrupt it injects can land inside a SQLite write and keep the store locked. A seed reads the
flag before it starts and after every classifier epoch, and ends its own run there. The flag lives in the
GCS's key-value store (ray_internals.flag_*), not in an actor: reading it never blocks the task on an
object, which would lend its CPU to a queued seed."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ganmix.datasets import ImageDataset
from ganmix.search import ray_internals

STOP_GRACE_S = 30.0  # how long stopped seeds get to reach their next epoch
STOPPED = "stopped before it finished"  # the error a seed's run ends with when the flag was set


class SeedStopped(Exception):
    """Raised inside a seed's classifier loop once its confirmation was told to stop."""


@dataclass(frozen=True)
class StopFlag:
    """A confirmation's stop switch, readable by seeds on any node: a key of its own in the GCS's
    key-value store, set or absent. Picklable (only the key travels with a task)."""

    key: str = field(default_factory=lambda: f"stop-{uuid.uuid4().hex}")

    def set(self) -> None:
        ray_internals.flag_set(self.key)

    def is_set(self) -> bool:
        return ray_internals.flag_is_set(self.key)

    def clear(self) -> None:
        ray_internals.flag_clear(self.key)


@dataclass(frozen=True)
class SeedJob:
    """One recipe (its seeds already set) to run: where its run goes, what it is called, which data."""

    recipe_yaml: str
    parent_run_id: str
    name: str
    tags: Mapping[str, Any] = field(default_factory=dict)
    data: int = 0  # which data set: the index of its Ray object (one per seed with --resample-data)


def run_seed(dataset: ImageDataset, job: SeedJob, *, uri: str, experiment_id: str, cache_dir: str, cpus: float,
             stop: StopFlag | None = None, weights: dict[str, bytes] | None = None) -> dict[str, Any] | None:
    """Train `job`'s recipe and return its final val and test metrics; None when the stage was stopped
    before this seed started (it then has no run)."""
    from ganmix.search.recipe import Recipe
    from ganmix.search.recipe_run import NewRun, run_recipe

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    def check(_logger: Any, _metrics: dict[str, float]) -> None:
        if stopped():
            raise SeedStopped(STOPPED)

    if stopped():
        return None
    if weights:  # the driver's ImageNet weights files: no seed downloads
        from ganmix.models.pretrained import install_weights

        install_weights(weights)
    recipe = Recipe.from_yaml(job.recipe_yaml, source=f"run {job.name}")
    run = NewRun(uri, experiment_id, job.name, job.tags, parent_run_id=job.parent_run_id)
    # Sample metrics belong to the search; here only the classifier's test metrics are wanted.
    metrics, _ = run_recipe(recipe, dataset, run=run, cache_dir=cache_dir, sample_metrics=False, cpus=cpus,
                            report=check)
    return metrics


def run_jobs(jobs: Mapping[Hashable, SeedJob], datasets: Sequence[ImageDataset], *, uri: str, experiment_id: str,
             cpus: float, gpus: float, cache_dir: str, address: str | None, quiet: bool, label: str,
             weights: dict[str, bytes] | None = None) -> dict[Hashable, dict[str, float] | str]:
    """Every job as a Ray task with a trial's resources; returns per key its metrics, or the error text of a
    failed task. Ctrl-C or SIGTERM stops them through a StopFlag (see the module's docstring)."""
    import ray

    from ganmix.search.ray_start import start_ray

    with _interruptible() as interrupted:
        start_ray(address)
        task = ray.remote(run_seed).options(num_cpus=cpus, num_gpus=gpus, max_retries=1)
        stop = StopFlag()
        refs = [ray.put(d) for d in datasets]
        weights_ref = ray.put(weights or {})  # ImageNet weights files: put once, read by every task
        pending = {task.remote(refs[job.data], job, uri=uri, experiment_id=experiment_id, cache_dir=cache_dir,
                               cpus=cpus, stop=stop, weights=weights_ref): key for key, job in jobs.items()}
        results: dict[Hashable, dict[str, float] | str] = {}
        started, total = time.monotonic(), len(pending)
        try:
            while pending:
                # A timeout, so that a Ctrl-C that Ray's own code swallowed (it can, while it starts workers)
                # still ends the loop within a second.
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                if interrupted.is_set():
                    raise KeyboardInterrupt
                if not done:
                    continue
                key = pending.pop(done[0])
                try:
                    results[key] = ray.get(done[0])
                except Exception as exc:  # a failed seed is reported, the others still count
                    results[key] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
                if not quiet:
                    failed = sum(isinstance(v, str) for v in results.values())
                    print(f"[{time.monotonic() - started:6.0f}s] {label}: {len(results)}/{total} runs done, "
                          f"{failed} failed", flush=True)
        except KeyboardInterrupt:
            parents = sorted({job.parent_run_id for job in jobs.values()})
            _wind_down(list(pending), stop, uri=uri, experiment_id=experiment_id, parents=parents, quiet=quiet)
            raise
        finally:
            if ray.is_initialized():  # a long-lived cluster keeps no stale keys
                with contextlib.suppress(Exception):  # an unreachable GCS must not hide the real error
                    stop.clear()
    return results


def _wind_down(pending: list[Any], stop: StopFlag, *, uri: str, experiment_id: str, parents: list[str],
               quiet: bool) -> None:
    """After Ctrl-C: every unfinished seed ends its run (FAILED, "stopped") at its next classifier epoch and
    the queued ones never start. Past STOP_GRACE_S, or at a second Ctrl-C, Ray is shut down (its workers
    with it) and the runs still open are closed as KILLED, so none stays RUNNING."""
    import ray

    from ganmix.tracking import runs

    stop.set()
    if not quiet:
        print(f"stopping: {len(pending)} unfinished seeds end their runs at their next epoch "
              f"(up to {STOP_GRACE_S:.0f} s; Ctrl-C again to stop now)", flush=True)
    try:
        deadline = time.monotonic() + STOP_GRACE_S
        while pending and time.monotonic() < deadline:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
    finally:
        if pending:
            ray.shutdown()
        for parent in parents:
            runs.close_running_children(uri, experiment_id, parent, status="KILLED",
                                        reason=f"{STOPPED} (Ray shut down)")


@contextlib.contextmanager
def _interruptible() -> Iterator[threading.Event]:
    """Ctrl-C (SIGINT) and SIGTERM (kill, a scheduler's stop) set the event as well as raising
    KeyboardInterrupt, for the wait loop to see either way; the handlers before are restored after."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield interrupted
        return

    def on_signal(signum: int, frame: object) -> None:
        from ganmix.search.signals import note

        note(signum)  # the exit code: 130 for Ctrl-C, 143 for SIGTERM, as for every command
        interrupted.set()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupted
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
