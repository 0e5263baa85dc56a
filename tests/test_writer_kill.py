"""The driver's tracking writer under fire: a search of many quick trials is stopped while its writer is
behind (events journaled, not yet written): by Ctrl-C (SIGINT to the driver's process group), and by SIGKILL
of the driver alone, the process the writer runs in. After `ganmix search --resume NAME` every trial that
finished has its run FINISHED with its metrics, and the driver's own writes (wall time) are all there."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from cluster_harness import SearchProcess, run_search_cli, search_runs, tune_summary, write_search_spec

TRIALS = 10
# Real-only trials of one classifier epoch on digits: seconds each, so trials end in a burst of events.
QUICK = {"trials": TRIALS, "max_concurrent": 2, "cpus_per_trial": 1, "seed": 0, "grace_period": 1,
         "finalists": {"count": 0},  # the finalists stage is not what this tests: no extra runs
         "space": {"generator": ["none"], "classifier_lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
         "fixed": {"classifier_epochs": 1, "classifier_min_steps": 0, "augment": "none"}}


def _journal(results: Path) -> Path | None:
    found = list((results / "journal").glob("*.jsonl")) if (results / "journal").is_dir() else []
    return found[0] if found else None


def _unwritten(journal: Path | None) -> tuple[set[str], set[str]]:
    """(trials whose close event is journaled, those among them not yet acknowledged by the writer)."""
    if journal is None or not journal.is_file():
        return set(), set()
    entries = []
    for line in journal.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    acked = {e["ack"] for e in entries if "ack" in e}
    closes = {e["seq"]: e["args"]["trial_id"] for e in entries if e.get("op") == "close"
              and e["args"].get("status") == "FINISHED"}
    return set(closes.values()), {t for seq, t in closes.items() if seq not in acked}


def _stop_while_behind(search: SearchProcess, results: Path, stop: str, *, timeout_s: float = 420) -> set[str]:
    """Poll the journal and stop the driver the moment a trial's end is journaled but not yet written (at
    least two trials ended by then); returns the trials whose end the driver had seen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        closed, pending = _unwritten(_journal(results))
        if len(closed) >= 2 and pending:
            if stop == "sigint":
                os.killpg(search.proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
            else:
                os.kill(search.proc.pid, signal.SIGKILL)  # the writer's process alone; Ray dies with it
            return closed
        if search.proc.poll() is not None:
            pytest.fail(f"the search ended before its writer fell behind:\n{search.output()[-3000:]}")
        time.sleep(0.005)
    pytest.fail(f"the writer never fell behind within {timeout_s:.0f} s:\n{search.output()[-3000:]}")


@pytest.mark.parametrize("stop", ["sigint", "sigkill"])
def test_finished_trials_survive_a_killed_writer(stop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANMIX_CACHE", str(tmp_path / "user-cache"))
    results, name = tmp_path / "results", f"burst-{stop}"
    spec = write_search_spec(tmp_path / "spec.yaml", **QUICK)
    args = ["--config", str(spec), "--name", name, "--results-dir", str(results), "--no-sample-metrics"]
    with SearchProcess(args, log_path=tmp_path / "first.log", cwd=tmp_path) as first:
        seen = _stop_while_behind(first, results, stop)
        code = first.wait(timeout_s=180)
        if stop == "sigkill":
            first.kill()  # whatever of its process group is left (none should be)
    assert code == (130 if stop == "sigint" else -signal.SIGKILL), first.output()[-3000:]

    code, output = run_search_cli(["--resume", name, *args[4:]], log_path=tmp_path / "resume.log",
                                  timeout_s=600, cwd=tmp_path)
    assert code == 0, output[-3000:]
    assert tune_summary(output)[0] == TRIALS

    parent, children = search_runs(f"sqlite:///{results / 'mlflow.db'}", name)
    assert parent.info.status == "FINISHED"
    assert not [r for r in children if r.info.status == "RUNNING"], "a trial run was left RUNNING"
    finished = {r.data.tags["ganmix.trial_id"]: r for r in children if r.info.status == "FINISHED"}
    assert Counter(r.data.tags["ganmix.trial_id"] for r in children if r.info.status == "FINISHED").most_common(1)[0][1] == 1
    missing = seen - set(finished)
    assert not missing, f"trials the driver saw finish have no FINISHED run: {missing}"
    for trial_id in seen:
        metrics = finished[trial_id].data.metrics
        assert "val/auc" in metrics and "test/auc" in metrics, (trial_id, sorted(metrics))
        assert "time/trial_wall_seconds" in metrics, f"the driver's write for trial {trial_id} was lost"
    assert _unwritten(_journal(results))[1] == set()  # the resume applied what the killed writer left
