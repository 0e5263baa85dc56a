"""Bad tracking URIs, damaged or unusable stores and bad output paths fail with one line before any work,
naming the file and what to do (see test_bad_inputs.py). All are judged before torch, Ray or MLflow are
imported, so each runs as its own CLI process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from _bad_input_harness import bad_input_case, half_migrated_store, make_inputs

DAMAGED = "restore it from a backup, or point --results-dir elsewhere"
STORES = {  # results folders holding a bad mlflow.db
    "random": os.urandom(4096), "zero": b"", "text": b"hello, I am no database\n",
    "header_only": b"SQLite format 3\x00" + b"\x00" * 84 + os.urandom(4000),
}
URIS = [
    ("tracking_unknown_scheme", ["search", "--tracking-uri", "foo://x"], "unknown scheme 'foo'"),
    ("tracking_plain_path", ["search", "--tracking-uri", "{tmp}/store"], "is a plain path"),
    ("tracking_sqlite_folder", ["search", "--tracking-uri", "sqlite:///{tmp}/a_dir"], "is a folder"),
    ("tracking_sqlite_relative", ["search", "--tracking-uri", "sqlite://x.db"], "expected sqlite:///ABSOLUTE"),
    ("tracking_unreachable", ["search", "--tracking-uri", "http://127.0.0.1:{port}"], "is unreachable"),
    ("tracking_no_host", ["best", "--tracking-uri", "http://"], "'http://': no host"),
    ("tracking_bad_port", ["best", "--tracking-uri", "http://127.0.0.1:99999"], "port is not a number in 1..65535"),
    ("tracking_long", ["best", "--tracking-uri", "foo://{long}"], "unknown scheme 'foo'"),
    ("tracking_file_store", ["search", "--tracking-uri", "file://{tmp}/mlruns"], "MLflow no longer supports file"),
    ("tracking_file_store_best", ["best", "--tracking-uri", "file://{tmp}/mlruns"], "MLflow no longer supports file"),
    *[(f"tracking_env_{cmd}", [cmd, *extra], "MLFLOW_TRACKING_URI 'bogus://x': unknown scheme")
      for cmd, extra in [("search", []), ("best", []), ("ui", []), ("confirm", []), ("train", ["--recipe", "{tmp}/a_file"])]],
]
DAMAGED_STORES = [
    *[(f"store_{kind}_{cmd}", [cmd, "--results-dir", f"{{tmp}}/store_{kind}", *extra],
       f"store_{kind}/mlflow.db is {what}")
      for kind, what in [("random", "not a SQLite database"), ("zero", "empty (0 bytes)"),
                         ("text", "not a SQLite database"), ("header_only", "damaged")]
      for cmd, extra in [("search", []), ("best", [])]],
    *[(f"store_random_{cmd}", [cmd, "--results-dir", "{tmp}/store_random", *extra], "is not a SQLite database")
      for cmd, extra in [("ui", []), ("confirm", []), ("train", ["--recipe", "{tmp}/a_file"])]],
    ("store_half_migrated", ["best", "--results-dir", "{tmp}/store_migrating"], "half-done schema migration"),
    *[(f"store_truncated_{cmd}", [cmd, "--results-dir", "{tmp}/store_truncated"], "mlflow.db is damaged (truncated:")
      for cmd in ("search", "best", "ui")],
    ("store_is_folder", ["search", "--results-dir", "{tmp}/store_folder"], "store_folder/mlflow.db is a folder"),
    ("ui_missing_store", ["ui", "--results-dir", "{tmp}/nowhere"], "no results at --results-dir {tmp}/nowhere"),
    ("confirm_missing_store", ["confirm", "--results-dir", "{tmp}/nowhere"], "run `ganmix search` first"),
]
OUTPUTS = [
    ("export_into_folder", ["best", "--export", "{tmp}/a_dir"], "--export {tmp}/a_dir is a folder"),
    ("export_missing_parent", ["best", "--export", "{tmp}/no/such/r.yaml"], "its folder {tmp}/no/such does not exist"),
    ("export_parent_is_file", ["best", "--export", "{tmp}/a_file/r.yaml"], "its folder {tmp}/a_file is a file"),
    ("export_exists", ["best", "--export", "{tmp}/a_file"], "--export {tmp}/a_file exists; pass --force"),
    ("export_read_only", ["best", "--export", "/proc/self/r.yaml"], "is not writable"),
]
CASES = URIS + DAMAGED_STORES + OUTPUTS


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_inputs(tmp_path_factory.mktemp("bad_stores"), {},
                       {f"store_{kind}/mlflow.db": data for kind, data in STORES.items()})
    half_migrated_store(root / "store_migrating" / "mlflow.db")
    truncated = root / "store_truncated" / "mlflow.db"
    half_migrated_store(truncated)
    with sqlite3.connect(truncated) as connection:
        connection.execute("DROP TABLE _alembic_tmp_metrics")
        connection.execute("CREATE TABLE metrics (key TEXT)")
        connection.executemany("INSERT INTO metrics VALUES (?)", [("x" * 200,)] * 2000)
    connection.close()
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (root / "store_folder" / "mlflow.db").mkdir(parents=True)
    return root


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_store_fails_with_one_line(inputs: Path, args: list[str], expected: str, request,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    case = request.node.callspec.id
    env = {"MLFLOW_TRACKING_URI": "bogus://x"} if case.startswith("tracking_env_") else {}
    line = bad_input_case(inputs, case, args, expected, in_process=False, monkeypatch=monkeypatch, capsys=capsys,
                          env_extra=env)
    if case.startswith("store_") and "SQLite" not in expected and "folder" not in expected:
        assert DAMAGED in line or "half-done" in line


def test_a_read_only_store_is_one_line_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """An immutable store (root ignores chmod) fails before any work, not after 97 s of retries."""
    db = tmp_path / "results" / "mlflow.db"
    half_migrated_store(db)
    with __import__("sqlite3").connect(db) as connection:
        connection.execute("DROP TABLE _alembic_tmp_metrics")
    connection.close()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not supported here")
    else:
        db.chmod(0o444)
    try:
        bad_input_case(tmp_path, "read_only_store", ["best", "--results-dir", str(db.parent)],
                       "mlflow.db is not writable", in_process=False, monkeypatch=monkeypatch, capsys=capsys)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(db)], check=True)
