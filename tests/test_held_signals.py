"""A stop signal inside a call to a local store waits for the call's end (tracking/held.py): Ctrl-C or SIGTERM
in the middle of SQLAlchemy left SQLite's lock held, and the run's closing writes then failed with MLflow's
traceback ("database is locked") instead of closing it KILLED."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ganmix.search import signals
from ganmix.tracking import held, runs, store


@pytest.fixture
def command_signals() -> Iterator[None]:
    """The CLI's handlers, as a command installs them; the test process's own come back afterwards (a
    command leaves its handlers in place after a stop, the process being about to end)."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with signals.installed():
            yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_a_signal_inside_a_call_is_raised_when_the_call_returns(command_signals: None) -> None:
    steps = []
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        with held.uninterrupted():
            signal.raise_signal(signal.SIGTERM)
            steps.append("after the signal")
    assert steps == ["after the signal"]
    assert signals.exit_code() == 143


def test_a_signal_outside_a_call_is_raised_at_once(command_signals: None) -> None:
    steps = []
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
        steps.append("after the signal")
    assert steps == []
    with held.uninterrupted():  # nothing held over from before
        steps.append("a later call")
    assert steps == ["a later call"]


@pytest.mark.integration
def test_ctrl_c_in_the_middle_of_a_metric_write_closes_the_run_killed(tmp_path: Path,
                                                                      command_signals: None) -> None:
    from sqlalchemy import event

    uri = store.default_tracking_uri(tmp_path / "results")
    store.check_reachable(uri)
    experiment_id = store.ensure_experiment(uri, "digits")
    logger = runs.start_run(uri, experiment_id, name="interrupted", tags={})
    engine = logger._client._tracking_client.store.engine  # noqa: SLF001 - where SQLAlchemy runs the SQL
    statements = []

    def interrupt_once(*args: object) -> None:  # Ctrl-C while MLflow's metric write is in SQLite
        statements.append(args[2])
        if len(statements) == 1:
            signal.raise_signal(signal.SIGINT)

    event.listen(engine, "after_cursor_execute", interrupt_once)
    try:
        with pytest.raises(KeyboardInterrupt):
            logger.log_metrics({"val_auc": 0.5}, step=1)
    finally:
        event.remove(engine, "after_cursor_execute", interrupt_once)
    assert len(statements) > 1  # the write went on past the signal, to its end
    assert logger._pending == []  # noqa: SLF001 - done, so not written again at the run's end
    started = time.monotonic()
    logger.finish("KILLED", error="KeyboardInterrupt: signal 2")  # what run_recipe does next
    assert time.monotonic() - started < 5  # no lock left to wait on
    run = runs.get_run(uri, logger.run_id)
    assert run.info.status == "KILLED"
    assert runs.read_metrics(run)["val_auc"] == 0.5
