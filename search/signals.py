"""Ctrl-C and SIGTERM stop every command the same way (issue 25): the work in progress stops, its MLflow runs are
closed as KILLED, and the command exits 130 (Ctrl-C) or 143 (SIGTERM), with no traceback.

SIGTERM is handled as a Ctrl-C: inside a search Tune's own Ctrl-C handler stops the trials and saves the
experiment (Ray's driver would otherwise `sys.exit` from the middle of Tune and abort in its C++ core);
elsewhere it raises KeyboardInterrupt. Only one KeyboardInterrupt is raised per process: later signals arrive
while the runs are being closed, and cutting that short is what left tracebacks and RUNNING runs behind.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from ganmix.tracking import held

_received: list[int] = []  # the stop signals received, in order
_raised = False  # a KeyboardInterrupt was raised for one of them: the command is closing its runs
_active = False  # install() ran: the CLI owns the process's signals


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Our handlers for SIGINT and SIGTERM while a command runs (main thread only: elsewhere Python cannot
    set them). The handlers before come back afterwards (a command run inside another program, a test),
    except after a stop: the process is ending, and Ray's shutdown at exit must not be cut short either."""
    global _active, _raised
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    _active, _raised = True, False
    previous = {sig: signal.signal(sig, handler)
                for sig, handler in ((signal.SIGINT, _on_interrupt), (signal.SIGTERM, _on_terminate))}
    try:
        yield
    finally:
        _active = False
        if not _raised:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def reinstall_sigterm() -> None:
    """After ray.init, which sets a SIGTERM handler of its own (`sys.exit` from wherever the driver is)."""
    if _active and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_terminate)


def note(signum: int) -> None:
    """A stop signal another handler took (confirm's own) still decides the exit code."""
    _received.append(signum)


def closing() -> None:
    """The command has begun closing its runs after a stop (Tune's own Ctrl-C handling ended the search):
    from now on a Ctrl-C or SIGTERM is noted, not raised."""
    global _raised
    _raised = True


def exit_code() -> int:
    """128 + the first stop signal received (130 for Ctrl-C, 143 for SIGTERM); 130 when none was seen."""
    return 128 + (_received[0] if _received else signal.SIGINT)


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    global _raised
    _received.append(signum)
    if _raised:  # the runs are being closed: let that finish rather than leave them RUNNING
        if len(_received) == 2 or _received.count(signum) == 2:
            print("ganmix: stopping: closing the runs first (kill -9 to end at once)", file=sys.stderr, flush=True)
        return
    _raised = True
    interrupt = KeyboardInterrupt(f"signal {signum}")
    if not held.hold(interrupt):  # else raised when the main thread's call to the local store returns
        raise interrupt


def _on_terminate(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler not in (_on_interrupt, signal.default_int_handler, _on_terminate):
        _received.append(signum)
        handler(signal.SIGINT, frame)  # Tune's (or confirm's) own Ctrl-C handling, as for a Ctrl-C
        return
    _on_interrupt(signum, frame)
