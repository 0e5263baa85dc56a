"""The command line: bad input is one clear line naming the file or field, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def ganmix(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ganmix.search.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["search", "--dataset", "breastmnist", "--data-dir", "{tmp}/nowhere", "--dry-run"], None),
        (["search", "--config", "{tmp}/missing.yaml"], "missing.yaml does not exist"),
        (["search", "--config", "{tmp}/bad.yaml"], "bad.yaml: space.generator_epochs: low 9 is above high 2"),
        (["search", "--trials", "0", "--dry-run"], "trials must be an integer >= 1, got 0"),
        (["search", "--dataset", "nosuchmnist", "--results-dir", "{tmp}/r"], "nosuchmnist"),
        (["search", "--dataset", "breastmnist", "--data-dir", "{tmp}/empty", "--results-dir", "{tmp}/r"],
         "breastmnist.npz"),
        (["search", "--class-fraction", "7=1.5", "--results-dir", "{tmp}/r"], "1.5"),
        (["train", "--recipe", "{tmp}/bad_recipe.yaml"], "synthetic_ratio must be"),
        (["search", "--tracking-uri", "http://127.0.0.1:9", "--results-dir", "{tmp}/r"], "http://127.0.0.1:9"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, expected):
    (tmp_path / "bad.yaml").write_text("space:\n  generator_epochs: {type: int, low: 9, high: 2}\n")
    (tmp_path / "bad_recipe.yaml").write_text("dataset: digits\nsynthetic_ratio: -2\n")
    (tmp_path / "empty").mkdir()
    done = ganmix(*[a.replace("{tmp}", str(tmp_path)) for a in args], cwd=tmp_path)
    if expected is None:  # a dry run resolves the spec without touching data
        assert done.returncode == 0 and "dataset: breastmnist" in done.stdout
        return
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("ganmix: error:") and expected in done.stderr, done.stderr


def test_unknown_metric_is_rejected_before_any_work():
    done = ganmix("search", "--metric", "accuracy")
    assert done.returncode == 2 and "invalid choice: 'accuracy'" in done.stderr


def test_help_documents_every_command():
    done = ganmix("--help")
    assert done.returncode == 0
    for command in ("search", "confirm", "best", "train", "ui"):
        assert command in done.stdout


def test_best_and_confirm_without_results_create_nothing(tmp_path):
    best = ganmix("best", "--results-dir", str(tmp_path / "r"))
    assert best.returncode == 1 and "no results there yet" in best.stdout
    confirm = ganmix("confirm", "--results-dir", str(tmp_path / "r"))
    assert confirm.returncode == 2 and "no results at" in confirm.stderr and "Traceback" not in confirm.stderr
    assert not (tmp_path / "r").exists()


def test_the_command_exits_without_teardown_after_what_a_normal_exit_runs(tmp_path):
    """cli.exit_without_teardown: a thread pool's queued work finishes, a non-daemon thread is joined, atexit
    handlers run (in their order, after both), buffered output is flushed, and the exit code is kept."""
    marks = tmp_path / "marks.txt"
    code = f"""
import atexit, concurrent.futures, threading, time, sys
from ganmix.search.cli import exit_without_teardown
path = {str(marks)!r}
def mark(text):
    with open(path, "a") as f:
        f.write(text + "\\n")
pool = concurrent.futures.ThreadPoolExecutor(1)
pool.submit(lambda: (time.sleep(0.3), mark("pool")))
threading.Thread(target=lambda: (time.sleep(0.3), mark("thread"))).start()
atexit.register(mark, "atexit")
sys.stdout.write("buffered, no newline")
exit_without_teardown(7)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 7, done.stderr
    assert done.stdout == "buffered, no newline"
    lines = marks.read_text().splitlines()
    assert sorted(lines[:2]) == ["pool", "thread"] and lines[2:] == ["atexit"]
