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
from queue import Empty, SimpleQueue
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
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
             weights: dict[str, bytes] | None = None,
             beside: Callable[[], None] | None = None) -> dict[Hashable, dict[str, float] | str]:
    """Every job as a Ray task with a trial's resources; returns per key its metrics, or the error text of a
    failed task. Ctrl-C or SIGTERM stops them through a StopFlag (see the module's docstring). `beside`: the
    driver's own work to do while the seeds run (it must not raise), done by the driver's seed slot before
    its first seed, else by this thread once the first seeds went to Ray.

    On a one-machine Ray without GPUs the driver runs seeds too, in a thread, as one of the machine's slots
    (Ray then gets one task fewer at a time): the driver has imported the training stack already, where a
    Ray worker that did not yet run a seed spends seconds of CPU importing it (README, "Demo timing")."""
    import ray

    from ganmix.search.ray_start import start_ray

    with _interruptible() as interrupted:
        start_ray(address)
        task = ray.remote(run_seed).options(num_cpus=cpus, num_gpus=gpus, max_retries=1)
        stop = StopFlag()
        refs = [ray.put(d) for d in datasets]
        weights_ref = ray.put(weights or {})  # ImageNet weights files: put once, read by every task
        queue = _JobQueue(jobs)
        ray_slots = _ray_slots(address, cpus=cpus, gpus=gpus, jobs=len(jobs))
        pending: dict[Any, Hashable] = {}

        def submit() -> None:
            item = queue.take()
            if item is not None:
                key, job = item
                pending[task.remote(refs[job.data], job, uri=uri, experiment_id=experiment_id, cache_dir=cache_dir,
                                    cpus=cpus, stop=stop, weights=weights_ref)] = key

        for _ in range(ray_slots if ray_slots is not None else len(jobs)):
            submit()
        driver = None
        if ray_slots is not None:
            driver = _DriverSlot(queue, lambda job: run_seed(datasets[job.data], job, uri=uri,
                                                             experiment_id=experiment_id, cache_dir=cache_dir,
                                                             cpus=cpus, stop=stop, weights=weights), first=beside)
        elif beside is not None:
            beside()
        results: dict[Hashable, dict[str, float] | str] = {}
        started, total = time.monotonic(), len(jobs)

        def record(key: Hashable, outcome: dict[str, float] | str) -> None:
            results[key] = outcome
            if not quiet:
                failed = sum(isinstance(v, str) for v in results.values())
                print(f"[{time.monotonic() - started:6.0f}s] {label}: {len(results)}/{total} runs done, "
                      f"{failed} failed", flush=True)

        try:
            while len(results) < total:
                # A timeout, so that a Ctrl-C that Ray's own code swallowed (it can, while it starts workers)
                # still ends the loop within a second; shorter while the driver's own seeds may end.
                wait_s = 1.0 if driver is None else 0.2
                done = ray.wait(list(pending), num_returns=1, timeout=wait_s)[0] if pending else []
                if interrupted.is_set():
                    raise KeyboardInterrupt
                for ref in done:
                    key = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as exc:  # a failed seed is reported, the others still count
                        outcome = _error_text(exc)
                    record(key, outcome)
                    if driver is not None:
                        submit()
                if driver is not None:
                    alive = driver.alive()  # before the collection: a thread that ended has handed in all it ran
                    for key, outcome in driver.finished(wait_s=0.0 if pending else wait_s):
                        record(key, outcome)
                    if not alive:  # its queue ran dry (or it died): what is left is Ray's
                        while not queue.empty():
                            submit()
                        if not pending and len(results) < total:
                            raise RuntimeError(f"{label}: {total - len(results)} runs were never run")  # a bug
        except KeyboardInterrupt:
            parents = sorted({job.parent_run_id for job in jobs.values()})
            queue.close()  # the seeds not yet handed out never start
            _wind_down(list(pending), stop, uri=uri, experiment_id=experiment_id, parents=parents, quiet=quiet,
                       driver=driver)
            raise
        finally:
            if driver is not None:
                driver.restore()
            if ray.is_initialized():  # a long-lived cluster keeps no stale keys
                with contextlib.suppress(Exception):  # an unreachable GCS must not hide the real error
                    stop.clear()
    return results


def _error_text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[-1][:300] if lines else ''}"


def _ray_slots(address: str | None, *, cpus: float, gpus: float, jobs: int) -> int | None:
    """How many seeds Ray runs at once when the driver runs seeds beside them; None: Ray runs them all. The
    driver takes a slot only where it is one: Ray on this machine alone (a cluster's driver is not a
    worker node), no GPU per seed (the driver holds none), room for at least two seeds at once, and more
    than one seed to run."""
    import ray

    if address not in (None, "local") or gpus > 0 or cpus <= 0 or jobs < 2:
        return None
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) != 1 or nodes[0].get("NodeID") != ray.get_runtime_context().get_node_id():
        return None
    slots = int(ray.cluster_resources().get("CPU", 0) // cpus)
    return slots - 1 if slots >= 2 else None


class _JobQueue:
    """The seeds not yet handed out, shared by the submitting loop and the driver's own slot."""

    def __init__(self, jobs: Mapping[Hashable, SeedJob]) -> None:
        self._items = list(jobs.items())
        self._lock = threading.Lock()

    def take(self) -> tuple[Hashable, SeedJob] | None:
        with self._lock:
            return self._items.pop(0) if self._items else None

    def empty(self) -> bool:
        with self._lock:
            return not self._items

    def close(self) -> None:
        with self._lock:
            self._items.clear()


class _DriverSlot:
    """A daemon thread of the driver that takes seeds from the queue and runs them until it is empty. A daemon:
    a second Ctrl-C ends the command without waiting for its seed (whose run is then closed as KILLED)."""

    def __init__(self, queue: _JobQueue, run: Callable[[SeedJob], dict[str, Any] | None], *,
                 first: Callable[[], None] | None = None) -> None:
        import torch

        self._threads = torch.get_num_threads()  # a seed sets the process's torch threads; put back after
        self._queue, self._run, self._first = queue, run, first
        self._done: SimpleQueue[tuple[Hashable, dict[str, Any] | str]] = SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="ganmix-driver-seed", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        if self._first is not None:  # meanwhile Ray's slots take the first seeds
            self._first()
        while (item := self._queue.take()) is not None:
            key, job = item
            try:
                outcome: dict[str, Any] | str = self._run(job)  # type: ignore[assignment]
            except Exception as exc:  # noqa: BLE001 - reported like a failed Ray task
                outcome = _error_text(exc)
            self._done.put((key, outcome))

    def finished(self, *, wait_s: float = 0.0) -> list[tuple[Hashable, dict[str, Any] | str]]:
        """The seeds it ran since the last call, waiting up to `wait_s` for one when there is none yet."""
        done = []
        try:
            done.append(self._done.get(timeout=wait_s) if wait_s > 0 else self._done.get_nowait())
            while True:
                done.append(self._done.get_nowait())
        except Empty:
            return done

    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, seconds: float) -> None:
        self._thread.join(seconds)

    def restore(self) -> None:
        if not self._thread.is_alive():
            import torch

            torch.set_num_threads(self._threads)


def _wind_down(pending: list[Any], stop: StopFlag, *, uri: str, experiment_id: str, parents: list[str],
               quiet: bool, driver: _DriverSlot | None = None) -> None:
    """After Ctrl-C: every unfinished seed ends its run (FAILED, "stopped") at its next classifier epoch and
    the queued ones never start. Past STOP_GRACE_S, or at a second Ctrl-C, Ray is shut down (its workers
    with it) and the runs still open are closed as KILLED, so none stays RUNNING."""
    import ray

    from ganmix.tracking import runs

    stop.set()
    unfinished = len(pending) + int(driver is not None and driver.alive())
    if not quiet:
        print(f"stopping: {unfinished} unfinished seeds end their runs at their next epoch "
              f"(up to {STOP_GRACE_S:.0f} s; Ctrl-C again to stop now)", flush=True)
    try:
        deadline = time.monotonic() + STOP_GRACE_S
        while pending and time.monotonic() < deadline:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
        if driver is not None:
            driver.join(max(0.0, deadline - time.monotonic()))
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
