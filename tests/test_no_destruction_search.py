"""No command may destroy another's results (issue 25, section 0), the cases with whole searches, each with
real `ganmix` processes side by side on one results folder: a second search of the same name and a search
whose data is missing leave the running one's folder alone; a search runs in one process at a time; a
failed resume changes nothing; a moved or copied results folder is one line; SIGTERM and a second Ctrl-C stop
a search as one Ctrl-C does."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from _bad_input_harness import check_one_line, closed_port

SPEC = {
    "dataset": "digits", "trials": 2, "max_concurrent": 1, "cpus_per_trial": 1,
    "finalists": {"count": 0},  # the finalists stage is not what this tests: no extra runs
    "space": {"generator": ["none", "dcgan"]},
    "fixed": {"generator_epochs": 1, "classifier_epochs": 2},
}
# Long enough trials that a signal reaches the search while they run.
SLOW_SPEC = {**SPEC, "trials": 3, "fixed": {"generator_epochs": 1, "classifier_epochs": 400}}

pytestmark = pytest.mark.integration


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANMIX_RESULTS", "RAY_ADDRESS")}
    proxy = f"http://127.0.0.1:{closed_port()}"  # a download fails at once: no test reaches the network
    env.update({"https_proxy": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "HTTP_PROXY": proxy})
    return env


def _start(*argv: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ganmix.search.cli", *argv], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run(*argv: str, cwd: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "ganmix.search.cli", *argv], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=900)
    return done.returncode, (done.stderr + done.stdout).strip(), time.monotonic() - started


def _wait(what: str, ready: Callable[[], bool], procs: list[subprocess.Popen[str]], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if procs and all(p.poll() is not None for p in procs):
            assert False, f"{what}: the process ended first: {procs[0].communicate()[0][-3000:]}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(1)


def _runs(results: Path) -> list[Any]:
    from mlflow import MlflowClient

    from ganmix.tracking import store

    uri = store.default_tracking_uri(results)
    store.check_reachable(uri)  # under the store's lock: a bare client would migrate it beside a search
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("ganmix/digits")
    return [] if experiment is None else client.search_runs([experiment.experiment_id], max_results=1000)


def _parent(results: Path, name: str) -> Any:
    return next(r for r in _runs(results) if r.data.tags.get("ganmix.search") == name
                and r.data.tags.get("ganmix.kind") == "search")


def _snapshot(results: Path) -> list[tuple[str, str, Any, str | None]]:
    return sorted((r.info.run_id, r.info.status, r.info.end_time, r.data.tags.get("ganmix.error"))
                  for r in _runs(results))


def _trial_running(results: Path) -> bool:
    if not (results / "mlflow.db").is_file():
        return False
    try:
        return any(r.data.tags.get("ganmix.kind") == "trial" and r.info.status == "RUNNING" for r in _runs(results))
    except Exception:  # noqa: BLE001 - the store is being created by the search
        return False


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`ganmix search --name twin` twice, 3 s apart, and a search whose data file is missing, on one new
    results folder; while the search runs, `--resume twin` from a fourth process."""
    root = tmp_path_factory.mktemp("twins")
    (root / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    (root / "empty").mkdir()
    results = root / "res"
    common = ["--results-dir", str(results), "--no-sample-metrics", "--quiet"]
    first = _start("search", "--config", "spec.yaml", "--name", "twin", *common, cwd=root)
    time.sleep(3)
    second = _start("search", "--config", "spec.yaml", "--name", "twin", *common, cwd=root)
    missing = _start("search", "--dataset", "breastmnist", "--data-dir", str(root / "empty"), "--trials", "2",
                     *common, cwd=root)
    lock = results / "ray" / "twin.lock"
    _wait("the search holding its lock", lambda: lock.exists() and (results / "ray" / "twin" / "tuner.pkl").is_file()
          and _trial_running(results), [first, second])
    running = [p for p in (first, second) if p.poll() is None]
    resumed = _run("search", "--resume", "twin", *common, cwd=root)
    still_running = [p.pid for p in running if p.poll() is None]
    outputs = {"first": first, "second": second, "missing": missing}
    done = {key: (p.wait(timeout=1800), p.communicate()[0]) for key, p in outputs.items()}
    return {"root": root, "results": results, "done": done, "resumed": resumed, "running": still_running,
            "pids": {key: p.pid for key, p in outputs.items()}}


def test_a_second_search_of_the_same_name_leaves_the_running_one_alone(twins: dict[str, Any]) -> None:
    done = twins["done"]
    codes = sorted(done[k][0] for k in ("first", "second"))
    assert codes == [0, 2], {k: v[1][-2000:] for k, v in done.items()}
    winner, loser = sorted(("first", "second"), key=lambda k: done[k][0])
    # One error line (after the "searching" line when it was refused at its parent run's opening).
    lines = [line for line in done[loser][1].splitlines() if line.strip() and not line.startswith("ganmix: searching")]
    assert len(lines) == 1 and "search 'twin' is being run by pid" in lines[0], done[loser][1]
    assert f"pid {twins['pids'][winner]} (" in lines[0] and "Traceback" not in done[loser][1], done[loser][1]
    results = twins["results"]
    assert (results / "mlflow.db").is_file()  # the folder was not removed under the running search
    parent = _parent(results, "twin")
    assert parent.info.status == "FINISHED"
    trials = [r for r in _runs(results) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
              and r.data.tags.get("ganmix.kind") == "trial"]
    assert len(trials) == SPEC["trials"] and all(t.info.status == "FINISHED" for t in trials)


def test_a_search_whose_data_is_missing_leaves_the_folder_alone(twins: dict[str, Any]) -> None:
    code, output = twins["done"]["missing"]
    lines = [line for line in output.splitlines() if line.strip() and "INFO" not in line]
    assert code == 2 and "breastmnist.npz is missing" in lines[-1] and "Traceback" not in output, output[-3000:]
    assert _parent(twins["results"], "twin").info.status == "FINISHED"


def test_a_running_search_cannot_be_resumed_by_another_process(twins: dict[str, Any]) -> None:
    returncode, output, seconds = twins["resumed"]
    assert twins["running"], "the search ended before the resume was tried"
    check_one_line(returncode, output, "search 'twin' is being run by pid", seconds)
    assert any(f"pid {pid} (" in output for pid in twins["running"]), output


def test_a_failed_resume_changes_nothing_that_was_finished(twins: dict[str, Any], tmp_path: Path) -> None:
    results, root = twins["results"], twins["root"]
    state = results / "ray" / "twin"
    backup = tmp_path / "state"
    shutil.copytree(state, backup)
    before = _snapshot(results)
    try:
        for damage in ("empty state", "truncated tuner"):
            if damage == "empty state":
                next(iter(sorted(state.glob("experiment_state-*.json")))).write_bytes(b"")
            else:
                shutil.rmtree(state)
                shutil.copytree(backup, state)
                pickle = state / "tuner.pkl"
                pickle.write_bytes(pickle.read_bytes()[: pickle.stat().st_size // 3])
            returncode, output, seconds = _run("search", "--resume", "twin", "--results-dir", str(results),
                                               "--no-sample-metrics", "--quiet", cwd=root)
            check_one_line(returncode, output, "--resume twin:", seconds)
            assert _snapshot(results) == before, damage  # statuses, end times, error tags: all as they were
    finally:
        shutil.rmtree(state)
        shutil.copytree(backup, state)


def test_a_moved_or_copied_results_folder_is_one_line(twins: dict[str, Any], tmp_path: Path) -> None:
    results = twins["results"]
    copy = tmp_path / "copy"
    shutil.copytree(results, copy, symlinks=True)  # as `cp -a`
    original = {str(p.relative_to(results)) for p in results.rglob("*")}
    for command in (["confirm", "--name", "twin", "--seeds", "2"], ["search", "--resume", "twin"], ["best"]):
        returncode, output, seconds = _run(*command, "--results-dir", str(copy), cwd=tmp_path)
        check_one_line(returncode, output, f"{copy} is a copy of {results}", seconds)
    assert {str(p.relative_to(results)) for p in results.rglob("*")} == original  # nothing written there
    moved = tmp_path / "moved"
    os.rename(results, moved)  # as `mv`
    try:
        returncode, output, seconds = _run("confirm", "--name", "twin", "--results-dir", str(moved), cwd=tmp_path)
        check_one_line(returncode, output, f"{moved} was moved from {results}", seconds)
        assert f"move it back to {results}" in output
    finally:
        os.rename(moved, results)


def test_sigterm_and_a_second_ctrl_c_stop_a_search_cleanly(tmp_path: Path) -> None:
    """SIGTERM: Tune stops as on Ctrl-C, runs closed KILLED, exit 143 (it was exit -6 and a C++ dump). Two
    Ctrl-C: exit 130, no traceback (the second used to cut the closing short)."""
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SLOW_SPEC))
    cases = {"term": [signal.SIGTERM], "two_ctrl_c": [signal.SIGINT, signal.SIGINT]}
    procs = {key: _start("search", "--config", "spec.yaml", "--name", key, "--results-dir", str(tmp_path / key),
                         "--no-sample-metrics", cwd=tmp_path) for key in cases}
    for key, proc in procs.items():
        _wait(f"a trial of {key} running", lambda key=key: _trial_running(tmp_path / key), [proc])
    for key, proc in procs.items():
        for number, sig in enumerate(cases[key]):
            time.sleep(1.0 if number else 0)
            proc.send_signal(sig)
    for key, proc in procs.items():
        output = proc.communicate(timeout=900)[0]
        expected = 128 + cases[key][0]
        assert proc.returncode == expected, f"{key}: {proc.returncode}\n{output[-3000:]}"
        assert "Traceback" not in output and "SIGABRT" not in output and "core dumped" not in output, output[-3000:]
        parent = _parent(tmp_path / key, key)
        assert parent.info.status == "KILLED", key
        assert all(r.info.status != "RUNNING" for r in _runs(tmp_path / key)), key
    # The case: two `--resume` of the interrupted search at once. One resumes it; the other is one
    # line naming that process (both used to run it: four finished trials for a three-trial search).
    results = tmp_path / "term"
    resumes = [_start("search", "--resume", "term", "--results-dir", str(results), "--no-sample-metrics", "--quiet",
                      cwd=tmp_path) for _ in range(2)]
    deadline = time.monotonic() + 900
    while all(p.poll() is None for p in resumes) and time.monotonic() < deadline:
        time.sleep(1)
    loser = next(p for p in resumes if p.poll() is not None)
    winner = next(p for p in resumes if p is not loser)
    output = loser.communicate()[0]
    # Besides the error: the "searching" line, or the resume's "resuming search ... as it was started" line.
    lines = [line for line in output.splitlines() if line.strip()
             and not line.startswith(("ganmix: searching", "ganmix: resuming search"))]
    assert loser.returncode == 2 and len(lines) == 1, output[-3000:]
    assert f"search 'term' is being run by pid {winner.pid} (" in lines[0], output
    assert winner.poll() is None, winner.communicate()[0][-3000:]
    winner.send_signal(signal.SIGTERM)
    output = winner.communicate(timeout=900)[0]
    assert winner.returncode == 143 and "Traceback" not in output, output[-3000:]
    assert _parent(results, "term").info.status == "KILLED"
