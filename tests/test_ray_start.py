"""Ray's start beside other work (search/ray_start.py): `ganmix search` imports its machinery and opens the
store while Ray's processes start; errors come in order, and only a Ray the call started is shut down."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from ganmix.search.preflight.errors import PreflightError
from ganmix.search.ray_start import start_ray_beside


def test_the_work_runs_in_another_thread_beside_a_running_ray_and_its_value_comes_back(ray_session) -> None:
    value, early = start_ray_beside(lambda: threading.current_thread().name, address=None)
    assert value != threading.current_thread().name
    assert early is None
    assert ray_session.is_initialized()


def test_then_runs_in_the_calling_thread_once_ray_is_up_while_the_work_still_runs(ray_session) -> None:
    then_ran = threading.Event()

    def work() -> bool:  # returns only once `then` ran: the two overlap
        return then_ran.wait(timeout=60)

    def then() -> tuple[str, bool]:
        then_ran.set()
        return threading.current_thread().name, ray_session.is_initialized()

    value, early = start_ray_beside(work, address=None, then=then)
    assert value is True
    assert early == (threading.current_thread().name, True)


def test_the_works_error_comes_before_an_error_of_then(ray_session) -> None:
    def fail() -> None:
        raise ValueError("store unreachable")

    def then() -> None:
        raise RuntimeError("task refused")

    with pytest.raises(ValueError, match="store unreachable"):
        start_ray_beside(fail, address=None, then=then)
    with pytest.raises(RuntimeError, match="task refused"):
        start_ray_beside(lambda: None, address=None, then=then)
    assert ray_session.is_initialized()


def test_a_failed_work_is_raised_and_a_ray_running_before_is_left_running(ray_session) -> None:
    def fail() -> None:
        raise ValueError("store unreachable")

    with pytest.raises(ValueError, match="store unreachable"):
        start_ray_beside(fail, address=None)
    assert ray_session.is_initialized()


def test_rays_error_comes_after_the_work_has_finished(monkeypatch) -> None:
    from ganmix.search import ray_start

    def refused(address: str | None, *, verbose: bool = False) -> None:
        raise PreflightError(f"--address {address}: connection refused")

    done: list[str] = []
    monkeypatch.setattr(ray_start, "start_ray", refused)
    with pytest.raises(PreflightError, match="--address 127.0.0.1:1"):
        start_ray_beside(lambda: done.append("work"), address="127.0.0.1:1")
    assert done == ["work"]


def test_a_failed_work_shuts_down_the_ray_the_call_started() -> None:
    code = textwrap.dedent("""
        import ray
        from ganmix.search.ray_start import start_ray_beside
        def fail():
            raise ValueError("bad data")
        try:
            start_ray_beside(fail, address=None)
        except ValueError as exc:
            print("raised", exc, "| ray running:", ray.is_initialized())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "raised bad data | ray running: False", out.stderr[-2000:]


def test_rays_chatter_is_hidden_before_ray_starts_unless_verbose(monkeypatch) -> None:
    # Ray warns while it starts (e.g. about token authentication); `ganmix search` starts Ray before the
    # rest of its quieting, so start_ray itself quiets Ray's logger first.
    import logging

    import ray

    from ganmix.search.ray_start import start_ray

    ray_logger = logging.getLogger("ray")
    before = ray_logger.level
    seen: list[int] = []

    def init(**kwargs: object) -> None:
        seen.append(ray_logger.getEffectiveLevel())
        raise ConnectionError("refused")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    try:
        ray_logger.setLevel(logging.NOTSET)
        for verbose in (True, False):
            with pytest.raises(PreflightError, match="--address 127.0.0.1:1: refused"):
                start_ray("127.0.0.1:1", verbose=verbose)
        assert seen[0] < logging.ERROR and seen[1] == logging.ERROR
    finally:
        ray_logger.setLevel(before)


def test_a_digits_search_starts_ray_before_torch_is_imported(tmp_path) -> None:
    """The digits are judged as numpy arrays, so Ray's start is not kept waiting for torch's import: the
    tensors are read beside it, and the reference task that needs them waits for them."""
    script = textwrap.dedent(f"""
        import sys
        from ganmix.search import ray_start

        def beside(work, **kwargs):
            print("torch before Ray:", "torch" in sys.modules)
            work()
            print("torch with the work:", "torch" in sys.modules)
            raise SystemExit(0)

        ray_start.start_ray_beside = beside
        sys.argv = ["ganmix", "search", "--results-dir", {str(tmp_path / "results")!r}, "--quiet"]
        from ganmix.search.cli import main
        main()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torch before Ray: False" in done.stdout and "torch with the work: True" in done.stdout, done.stdout


@pytest.mark.parametrize("verbose", [False, True])
def test_the_command_shuts_its_ray_down_before_the_exit_handlers_unless_it_forwards_worker_output(verbose) -> None:
    """Ray's own exit handler waits half a second for worker output; a Ray that forwards none (no --verbose)
    is shut down ahead of it. Either way the command's exit leaves none of Ray's processes behind."""
    code = textwrap.dedent(f"""
        import atexit
        import ray
        from ganmix.search.cli import exit_without_teardown
        from ganmix.search.ray_start import start_ray
        start_ray(None, verbose={verbose!r})
        pids = [info.process.pid for infos in ray._private.worker._global_node.all_processes.values()
                for info in infos]
        print("pids", *pids, flush=True)
        atexit.register(lambda: print("ray running in the exit handlers:", ray.is_initialized(), flush=True))
        exit_without_teardown(0)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"ray running in the exit handlers: {verbose}" in out.stdout, out.stdout
    pids = [int(p) for p in out.stdout.split("pids", 1)[1].splitlines()[0].split()]
    assert pids
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        assert state == "Z", f"Ray process {pid} still running after the command's exit"
