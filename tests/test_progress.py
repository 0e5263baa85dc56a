"""The search console: plain lines off a terminal, a live bar on one, the final table, quiet libraries."""

from __future__ import annotations

import io
import logging
import pickle
import re

import optuna

from ganmix.search.progress import SearchProgress, TrialRow, quiet_libraries


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_one_line_per_finished_trial():
    out = io.StringIO()
    progress = SearchProgress(3, "val_auc", stream=out)
    for _ in range(2):
        progress.started_trial()
    assert out.getvalue() == ""  # starts and results print nothing
    progress.finished_trial("baseline", status="completed", value=0.91)
    progress.finished_trial("acgan r=1.86 e=37 z=16", status="completed", value=0.95)
    progress.started_trial()
    progress.finished_trial("cvae r=1 e=3 z=16", status="stopped early", value=0.97)  # never the best
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"\[ *0:\d\d\] trial 1/3 completed: baseline val_auc 0\.9100 \| best val_auc 0\.9100 baseline",
                        lines[0]), lines[0]
    assert lines[1].endswith("trial 2/3 completed: acgan r=1.86 e=37 z=16 val_auc 0.9500 | best val_auc 0.9500 "
                             "acgan r=1.86 e=37 z=16")
    assert "stopped early: cvae r=1 e=3 z=16 val_auc 0.9700 | best val_auc 0.9500 acgan" in lines[2]
    assert (progress.done, progress.stopped, progress.failed, progress.running) == (3, 1, 0, 0)


def test_failed_trials_and_minimised_metrics():
    out = io.StringIO()
    progress = SearchProgress(2, "val_loss", stream=out)
    progress.finished_trial("dcgan r=1 e=3 z=16", status="failed", value=None)
    progress.finished_trial("baseline", status="completed", value=0.2)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("trial 1/2 failed: dcgan r=1 e=3 z=16 | no completed trial yet")
    assert lines[1].endswith("| best val_loss 0.2000 baseline")


def test_on_a_terminal_one_live_bar(monkeypatch):
    monkeypatch.setenv("COLUMNS", "130")  # a terminal wide enough for the whole bar
    out = Tty()
    progress = SearchProgress(2, "val_auc", stream=out)
    assert progress.live
    progress.started_trial()
    progress.finished_trial("baseline", status="completed", value=0.9)
    pickle.loads(pickle.dumps(progress))  # Tune pickles its callbacks with their progress
    progress.close()
    text = out.getvalue()
    assert "trials" in text and "1/2" in text and "best val_auc 0.9000 baseline" in text and "ETA" in text
    assert "trial 1/2 completed" not in text  # no plain lines on a terminal


def test_final_table_and_quiet():
    out = io.StringIO()
    rows = [TrialRow("1", "acgan r=1.86 e=37 z=16", 0.95, 0.03, 0.94)]
    base = TrialRow("2", "real-only lr=3e-4", 0.92, 0.0, None)
    SearchProgress(2, "val_auc", stream=out).summary(rows, base, test_metric="test_auc")
    lines = out.getvalue().splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["rank", "trial", "val_auc", "vs baseline", "test_auc"]
    assert "acgan r=1.86 e=37 z=16" in lines[1] and "+0.030" in lines[1] and "0.940" in lines[1]  # models/numbers.py
    assert "real-only lr=3e-4" in lines[2] and len(lines) == 3
    quiet = io.StringIO()
    progress = SearchProgress(2, "val_auc", stream=quiet, quiet=True)
    progress.finished_trial("baseline", status="completed", value=0.9)
    progress.summary(rows, base, test_metric=None)
    assert quiet.getvalue() == ""


def test_quiet_libraries_silences_info_but_not_errors():
    quiet_libraries(verbose=False)
    assert not logging.getLogger("mlflow").isEnabledFor(logging.INFO)
    assert not logging.getLogger("ray.tune").isEnabledFor(logging.WARNING)
    assert logging.getLogger("ray.tune").isEnabledFor(logging.ERROR)
    assert optuna.logging.get_verbosity() == optuna.logging.WARNING
