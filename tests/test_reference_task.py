"""The search's background tasks (search/reference_task.py): work behind the trials, in a thread of its own,
so a Ray worker's own thread keeps its priority for the finalists' seeds that run in it later."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from ganmix.search.reference_task import BACKGROUND_NICE, run_niced

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")


def _my_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@linux_only
def test_the_work_runs_niced_in_its_own_thread_and_the_caller_keeps_its_priority() -> None:
    before = _my_nice()
    seen = run_niced(3, lambda: (_my_nice(), threading.get_ident()))
    assert seen[0] == min(19, before + 3)
    assert seen[1] != threading.get_ident()
    assert _my_nice() == before


def test_an_error_of_the_work_reaches_the_caller() -> None:
    def fail() -> None:
        raise ValueError("bad reference data")

    with pytest.raises(ValueError, match="bad reference data"):
        run_niced(1, fail)


@linux_only
def test_a_warmed_worker_holds_the_finalists_modules_at_its_own_priority() -> None:
    # A fresh interpreter, as a new Ray worker is: the task returns at once and its thread imports behind it.
    code = textwrap.dedent("""
        import os, sys, threading, time
        from ganmix.search.reference_task import WARM_MODULES, warm_task
        before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert not any(name in sys.modules for name in WARM_MODULES)
        warm_task()
        deadline = time.monotonic() + 120
        while not all(name in sys.modules for name in WARM_MODULES) and time.monotonic() < deadline:
            time.sleep(0.1)
        for thread in threading.enumerate():
            if thread.name == "ganmix-niced":
                thread.join(60)
        print(sorted(set(WARM_MODULES) - set(sys.modules)), before,
              os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    missing, before, after = out.stdout.split("] ")[0] + "]", *out.stdout.split("] ")[1].split()
    assert missing == "[]"
    assert before == after
    assert BACKGROUND_NICE > 0
