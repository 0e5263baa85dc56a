"""No command may destroy another's results (issue 25, section 0), the cases without Ray: clean-up after bad
input, another program's SQLite file, a busy store, a moved or copied results folder, strict YAML. Each
runs real processes beside the command under test; the cases with whole searches are in
test_no_destruction_search.py."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from _bad_input_harness import check_one_line

# A process that registers as a user of a results folder (as every ganmix command writing there does), says
# so, and holds it until its stdin closes.
_USER = ("import sys; from ganmix.tracking import claims; claims.use_folder(sys.argv[1]); "
         "print('using', flush=True); sys.stdin.read()")
# A process holding SQLite's write lock on a database until its stdin closes (another program writing to it).
_SQLITE_WRITER = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
                  "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANMIX_RESULTS", "RAY_ADDRESS")}


def _hold(code: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=_env())
    assert proc.stdout is not None and proc.stdout.readline().strip() in ("using", "locked")
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=60)


def _ganmix(*argv: str, cwd: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "ganmix.search.cli", *argv], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=300)
    return done.returncode, (done.stderr + done.stdout).strip(), time.monotonic() - started


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- clean-up after bad input: only what this command created, and nobody else uses ----------------------

_CLEAN_UP = """
import sys
from pathlib import Path
from ganmix.tracking import claims
folder = Path(sys.argv[1])
claims.use_folder(folder)
(folder / "mine.txt").write_text("x")
print("created", flush=True)
sys.stdin.readline()  # the test lets another process use the folder, or not
print("removed" if claims.remove_created(folder) else "kept", flush=True)
"""


def _creator(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _CLEAN_UP, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout is not None and proc.stdout.readline().strip() == "created"
    return proc


def _finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate("\n", timeout=60)
    return out.strip()


def test_clean_up_keeps_a_folder_another_process_uses(tmp_path: Path) -> None:
    """The command that created a results folder fails on bad input while another command already works in
    it: the folder and everything in it stay."""
    folder = tmp_path / "new" / "res"
    creator = _creator(folder)
    user = _hold(_USER, str(folder))
    (folder / "theirs.txt").write_text("results of the other command")
    assert _finish(creator) == "kept"
    assert (folder / "theirs.txt").read_text() == "results of the other command"
    _release(user)


def test_clean_up_removes_what_it_created_when_nobody_else_uses_it(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "res"
    user = _hold(_USER, str(tmp_path / "other"))  # a user of another folder changes nothing
    assert _finish(_creator(folder)) == "removed"
    assert not (tmp_path / "new").exists()  # the parent it made for the folder too
    _release(user)


def test_clean_up_never_removes_a_folder_it_did_not_create(tmp_path: Path) -> None:
    folder = tmp_path / "res"
    user = _hold(_USER, str(folder))  # made by another command, which has ended by the time of the clean-up
    _release(user)
    proc = subprocess.run([sys.executable, "-c", _CLEAN_UP.replace('print("created", flush=True)\n', ""),
                           str(folder)], input="\n", capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.stdout.strip() == "kept", proc.stderr
    assert (folder / "mine.txt").exists()


def test_a_folder_removed_while_a_command_waits_to_use_it_is_made_again(tmp_path: Path) -> None:
    """A command that starts using a folder while a clean-up removes it waits for the removal, then makes
    the folder afresh (it never writes into a folder that is gone)."""
    from ganmix.tracking import claims

    folder = tmp_path / "res"
    creator = _creator(folder)
    assert _finish(creator) == "removed"
    assert claims.use_folder(folder) == folder.absolute() and (folder / claims.USERS_FILE).exists()


# --- another program's SQLite file, a busy store -------------------------------------------------------

@pytest.mark.parametrize("command", [["search", "--trials", "2"], ["best"], ["train", "--recipe", "{recipe}"]])
def test_another_programs_database_is_refused_untouched(tmp_path: Path, command: list[str]) -> None:
    results = tmp_path / "res"
    results.mkdir()
    db = results / "mlflow.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO customers (name) VALUES ('Ada')")
    connection.close()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dataset: digits\ngenerator: none\nsynthetic_ratio: 0.0\n")
    before = _tree(tmp_path)
    argv = [a.replace("{recipe}", str(recipe)) for a in command]
    returncode, output, seconds = _ganmix(*argv, "--results-dir", str(results), cwd=tmp_path)
    check_one_line(returncode, output, "is another program's SQLite database (tables customers)", seconds)
    assert _tree(tmp_path) == before  # not one byte changed, no table added, nothing created beside it


def test_a_store_locked_by_another_program_is_busy_not_damaged(tmp_path: Path) -> None:
    """Another program holds SQLite's write lock on the store: `busy`, naming that process; never the advice
    to restore a backup of a store that is fine."""
    results = tmp_path / "res"
    returncode, output, _ = _ganmix("best", "--results-dir", str(results), cwd=tmp_path)
    assert returncode == 1 and not results.exists(), output  # `best` on no results: nothing created
    from ganmix.tracking import store

    store.check_reachable(store.default_tracking_uri(results))  # an MLflow store, empty
    writer = _hold(_SQLITE_WRITER, str(results / "mlflow.db"))
    try:
        returncode, output, seconds = _ganmix("best", "--results-dir", str(results), cwd=tmp_path)
        check_one_line(returncode, output, "mlflow.db is busy: pid", seconds)
        assert f"pid {writer.pid} " in output and "backup" not in output, output
    finally:
        _release(writer)
    returncode, output, _ = _ganmix("best", "--results-dir", str(results), cwd=tmp_path)
    assert returncode == 1 and "no completed trials" in output, output  # usable again once released


def test_the_store_lock_held_too_long_names_its_holder(tmp_path: Path) -> None:
    """ganmix's own lock (held while a store is created or migrated) held past the wait: busy, with the pid."""
    from ganmix.tracking import store

    results = tmp_path / "res"
    store.check_reachable(store.default_tracking_uri(results))
    holder = _hold("import sys; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
                   "print('locked', flush=True); sys.stdin.read()", str(results / "mlflow.db.lock"))
    try:
        env = {**_env(), "GANMIX_STORE_LOCK_SECONDS": "1"}
        done = subprocess.run([sys.executable, "-m", "ganmix.search.cli", "best", "--results-dir", str(results)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        check_one_line(done.returncode, done.stderr + done.stdout, "mlflow.db is busy: pid", 0)
        assert f"pid {holder.pid} " in done.stderr and "backup" not in done.stderr, done.stderr
    finally:
        _release(holder)


# --- strict YAML ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("dataset: digits\nspace:\n  classifier_lr: {type: float, low: 0.0001, high: 0.01, log: 'false'}\n",
     "space.classifier_lr.log must be true or false (a YAML boolean, unquoted), got 'false'"),
    ("dataset: digits\nspace:\n  classifier_lr: {type: float, low: 0.0001, high: 0.01, log: 1}\n",
     "space.classifier_lr.log must be true or false"),
    ("dataset: digits\nspace: " + "[" * 3000 + "]" * 3000 + "\n", "YAML nested too deeply to read"),
    ("dataset: digits\nspace: " + "{a: " * 500 + "1" + "}" * 500 + "\n", "YAML nested too deeply to read"),
    ("\n".join(["dataset: digits"] + ["  " * i + f"k{i}:" for i in range(600)] + ["  " * 600 + "x: 1"]) + "\n",
     "YAML nested too deeply to read"),
], ids=["log_quoted_false", "log_number", "nested_lists", "nested_mappings", "nested_blocks"])
def test_spec_values_are_read_strictly(tmp_path: Path, text: str, expected: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    returncode, output, seconds = _ganmix("search", "--config", str(spec), "--dry-run", cwd=tmp_path)
    check_one_line(returncode, output, expected, seconds)
    assert str(spec) in output


def test_log_as_a_yaml_boolean_still_works(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"dataset": "digits", "space": {
        "classifier_lr": {"type": "float", "low": 0.0001, "high": 0.01, "log": False}}}))
    returncode, output, _ = _ganmix("search", "--config", str(spec), "--dry-run", cwd=tmp_path)
    assert returncode == 0, output
    assert yaml.safe_load(output)["space"]["classifier_lr"]["log"] is False
