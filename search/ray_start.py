"""Ray's start-up for a search or a confirmation, in a module that imports nothing heavy: `ganmix search`
starts Ray beside the import of the search machinery and the opening of the store (`start_ray_beside`)."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from ganmix.search.preflight.errors import PreflightError

log = logging.getLogger(__name__)
T = TypeVar("T")
U = TypeVar("U")
_monitor_hook = False  # whether this process registered _stop_monitor with atexit
_forwarded_logs = False  # whether the Ray this process started forwards its workers' output (--verbose)


def quiet_ray(verbose: bool) -> None:
    """Ray's console chatter (its start-up warnings, INFO lines) hidden unless --verbose; errors still get
    through. Before Ray starts: `ganmix search` starts it before the rest of its quieting (progress.py)."""
    if not verbose:
        logging.getLogger("ray").setLevel(logging.ERROR)


def start_ray(address: str | None, *, verbose: bool = False) -> None:
    """The one Ray start-up (a search, a confirmation): join `address`, or start a fresh local Ray; a Ray
    this process runs already (an in-process caller's) is used as it is."""
    global _forwarded_logs
    import ray

    if ray.is_initialized():
        return
    quiet_ray(verbose)
    # Without --address, "local" starts a fresh Ray: a bare ray.init() would join whatever cluster was
    # started last on this machine.
    local = address in (None, "local")
    for attempt in (1, 2):
        try:
            # A local Ray keeps idle workers up to 2 per CPU (Ray's default: 1, busy trial actors included),
            # so the worker that trained the reference classifier, torch and MLflow imported, is still there
            # for the finalists' tasks instead of a fresh process. A cluster's limit is not ours to set.
            ray.init(address=address or "local", include_dashboard=False, configure_logging=False,
                     log_to_driver=verbose,
                     _system_config={"num_workers_soft_limit": 2 * (os.cpu_count() or 1)} if local else None)
            from ganmix.search.signals import reinstall_sigterm

            reinstall_sigterm()  # SIGTERM stops a search as Ctrl-C does, not through Ray's sys.exit
            if local:
                _register_monitor_stop()
            _forwarded_logs = verbose
            return
        except ConnectionError as exc:  # e.g. --address auto with no cluster running: say so in one line
            raise PreflightError(f"--address {address}: {str(exc).splitlines()[0]}") from None
        except Exception as exc:
            # Ray gives a local raylet a fixed 30 s to register; several commands starting at once on a
            # busy machine can miss it (their starts no longer queue behind the store's creation): once more.
            if attempt == 2 or not local or "timed out during startup" not in str(exc):
                raise
            log.warning("Ray's local start-up timed out (a busy machine?); starting it once more")
            ray.shutdown()


def stop_ray() -> None:
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        _stop_monitor()
        ray.shutdown()


def stop_ray_before_exit() -> None:
    """Shut down Ray ahead of the command's atexit handlers. Ray's own handler first sleeps half a second, so
    that its workers' last lines reach the console; without --verbose it forwards none, so that wait is idle
    time at the end of every command. With --verbose, Ray's handler does it as usual."""
    if _forwarded_logs:
        return
    try:
        stop_ray()
    except Exception:  # noqa: BLE001 - Ray's own exit handler tries again, as it would have anyway
        log.debug("Ray's shutdown before exit failed", exc_info=True)


def _register_monitor_stop() -> None:
    """Once per process. atexit runs handlers last-registered first: this one before the ray.shutdown() that
    Ray registered when it was imported."""
    global _monitor_hook
    if not _monitor_hook:
        atexit.register(_stop_monitor)
        _monitor_hook = True


def _stop_monitor() -> None:
    """Shutting down a Ray this process started takes a second less without its autoscaler monitor."""
    from ganmix.search.ray_internals import stop_local_monitor

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    try:
        stop_local_monitor()
    except Exception:  # noqa: BLE001 - an older or newer Ray: its own shutdown still stops the monitor
        log.debug("could not stop Ray's autoscaler monitor ahead of Ray's shutdown", exc_info=True)


def start_ray_beside(work: Callable[[], T], *, address: str | None, verbose: bool = False,
                     then: Callable[[], U] | None = None) -> tuple[T, U | None]:
    """Start Ray while `work()` runs in another thread, and return what `work` returned (paired with `then`'s
    value, below): Ray's start mostly
    waits on its own processes, which use the cores the work leaves. Ray starts in this thread: the
    processes it starts die with the thread that started them (Linux's parent-death signal is per thread).
    Returned beside the work's value: what `then()` returned (None without it), which runs in this thread as
    soon as Ray is up, while the work may still run (to start Ray tasks early). The work's error comes first,
    then Ray's, then `then`'s; a Ray this call started is shut down again when any failed (or on Ctrl-C),
    one that was running before is left as it was."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the calling thread, before Ray's error
            outcome["error"] = exc

    # A daemon thread: a Ctrl-C of the main thread ends the command without waiting for it.
    thread = threading.Thread(target=target, name="ganmix-start", daemon=True)
    thread.start()
    import ray

    running_before = ray.is_initialized()
    try:
        ray_error: Exception | None = None
        early: U | None = None
        try:
            start_ray(address, verbose=verbose)
            if then is not None:
                early = then()
        except Exception as exc:  # said after the work's error, which comes first
            ray_error = exc
        thread.join()
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        if ray_error is not None:
            raise ray_error
    except BaseException:
        if not running_before:
            stop_ray()
        raise
    return outcome["value"], early  # type: ignore[return-value]
