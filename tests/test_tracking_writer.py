"""The search driver's tracking writer (tracking.runs.EventWriter) against a real MLflow SQLite store: events
applied in order off the caller's thread, transient errors retried, a killed writer's journal replayed."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ganmix.tracking import runs, store


@pytest.fixture()
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GANMIX_CACHE", str(tmp_path / "user-cache"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store.check_reachable(uri)
    return uri


def _run(uri: str) -> str:
    client = MlflowClient(uri)
    return client.create_run(client.create_experiment("writer")).info.run_id


def test_events_are_applied_in_order_off_the_callers_thread(uri: str, tmp_path: Path) -> None:
    run_id = _run(uri)
    threads: list[str] = []

    def log(*, value: float, step: int) -> None:
        threads.append(threading.current_thread().name)
        runs.RunLogger(uri, run_id).log_metrics({"best_val_auc": value}, step=step)

    writer = runs.EventWriter(tmp_path / "journal.jsonl", {"log": log})
    for step in range(1, 21):
        writer.submit("log", value=step / 100, step=step)
    assert writer.flush(timeout=120)
    writer.close()
    history = MlflowClient(uri).get_metric_history(run_id, "best/val_auc")
    assert [m.step for m in sorted(history, key=lambda m: m.timestamp)] == list(range(1, 21))
    assert set(threads) == {"ganmix-tracking-writer"}
    entries = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert sorted(e["ack"] for e in entries if "ack" in e) == list(range(1, 21))  # every event acknowledged


def test_a_transient_error_is_retried_until_applied(uri: str, tmp_path: Path) -> None:
    run_id = _run(uri)
    calls = []

    def flaky(*, key: str) -> None:
        calls.append(key)
        if len(calls) < 3:
            raise ConnectionError("connection refused")  # what an MLflow server restarting looks like
        MlflowClient(uri).set_tag(run_id, key, "yes")

    writer = runs.EventWriter(None, {"tag": flaky})
    writer.submit("tag", key="ganmix.applied")
    assert writer.flush(timeout=60)
    writer.close()
    assert len(calls) == 3 and MlflowClient(uri).get_run(run_id).data.tags["ganmix.applied"] == "yes"


def test_a_killed_writers_journal_is_replayed_once(uri: str, tmp_path: Path) -> None:
    """Events journaled but never acknowledged (the driver died first) are applied by the next writer on the
    same journal, in order; acknowledged ones are not applied again."""
    run_id = _run(uri)
    journal = tmp_path / "journal.jsonl"
    lines = [{"seq": 1, "op": "tag", "args": {"key": "a", "value": "1"}}, {"ack": 1},
             {"seq": 2, "op": "tag", "args": {"key": "b", "value": "2"}},
             {"seq": 3, "op": "tag", "args": {"key": "b", "value": "3"}}]
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"seq": 4, "op": "ta')  # cut short
    applied: list[tuple[str, str]] = []

    def tag(*, key: str, value: str) -> None:
        applied.append((key, value))
        MlflowClient(uri).set_tag(run_id, key, value)

    writer = runs.EventWriter(journal, {"tag": tag})
    assert writer.replay() == 2
    writer.submit("tag", key="c", value="4")  # a new event after the replayed ones: numbered on from them
    writer.close()
    assert applied == [("b", "2"), ("b", "3"), ("c", "4")]
    tags = MlflowClient(uri).get_run(run_id).data.tags
    assert "a" not in tags and tags["b"] == "3" and tags["c"] == "4"
    again = runs.EventWriter(journal, {"tag": tag})
    assert again.replay() == 0
    again.close()


def test_an_unknown_event_is_refused_at_submit(tmp_path: Path) -> None:
    writer = runs.EventWriter(None, {})
    with pytest.raises(KeyError, match="no handler for tracking event 'nope'"):
        writer.submit("nope")
    writer.close()


def test_one_run_logger_written_from_two_threads_makes_each_call_once_in_order(uri: str) -> None:
    # A search's parent run is written by Tune's loop (the arm tally) and by the tracking writer at once.
    logger = runs.RunLogger(uri, _run(uri))
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow() -> None:
        calls.append("first")
        started.set()
        assert release.wait(30)

    first = threading.Thread(target=logger._do, args=("first", slow))
    first.start()
    assert started.wait(30)
    threading.Timer(0.3, release.set).start()
    logger._do("second", lambda: calls.append("second"))  # waits for the first, never runs it again
    first.join(30)
    assert calls == ["first", "second"]
    logger.set_tags({"ganmix.arm.generator.completed": 3})  # and the real calls still go through
    assert MlflowClient(uri).get_run(logger.run_id).data.tags["ganmix.arm.generator.completed"] == "3"
