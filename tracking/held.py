"""A local store's call is not cut in half by Ctrl-C or SIGTERM.

A KeyboardInterrupt raised in the middle of SQLAlchemy can leave SQLite's statement open and its lock held:
the writes that close the run next (marked KILLED) then wait on it, and MLflow logs "database is locked"
with its whole traceback. So the command's signal handler (search/signals.py) asks `hold` first: while the
main thread is inside a call (`uninterrupted`), the interrupt is raised when the call returns. Calls to a
server are left interruptible (an unreachable one keeps a call waiting for minutes). Standard library only:
the signal handler imports it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0  # calls the main thread is inside (signal handlers run in the main thread, between its bytecodes)
_held: BaseException | None = None


@contextmanager
def uninterrupted() -> Iterator[None]:
    """A stop signal that arrives inside this block raises its exception at the block's end (main thread)."""
    global _depth, _held
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _held is not None:
            exc, _held = _held, None
            raise exc


def hold(exc: BaseException) -> bool:
    """From a signal handler: True when the main thread is inside an uninterrupted call, which then raises
    `exc` when it returns; False when the handler should raise it now."""
    global _held
    if _depth == 0:
        return False
    _held = exc
    return True
