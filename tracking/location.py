"""Where the tracking store is: the one place that resolves the tracking URI and asks whether a local
store exists. Light on purpose (no MLflow import): the CLI's pre-flight checks use it before any work."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "MLFLOW_TRACKING_URI"
STORE_FILE = "mlflow.db"
_SQLITE = "sqlite:///"


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the URI and what went wrong."""


def default_tracking_uri(results_dir: str | Path) -> str:
    """An embedded SQLite store inside the results folder: `mlflow ui` and `ganmix ui` open it."""
    return f"{_SQLITE}{(Path(results_dir).expanduser() / STORE_FILE).resolve()}"


def tracking_uri_source(uri: str | None) -> tuple[str | None, str]:
    """(the URI given, and where it came from: the flag or the environment), or (None, "--results-dir")
    when the embedded store of the results folder is used."""
    if uri is not None:
        return uri, "--tracking-uri"
    if os.environ.get(ENV):
        return os.environ[ENV], ENV
    return None, "--results-dir"


def resolve_tracking_uri(uri: str | None, results_dir: str | Path) -> str:
    """An explicit URI wins, then MLFLOW_TRACKING_URI, then the embedded store."""
    given, _ = tracking_uri_source(uri)
    return given if given is not None else default_tracking_uri(results_dir)


def is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "/"))


def local_store_file(uri: str) -> Path | None:
    """The SQLite file of a local store (whether or not it exists yet); None for a server or another backend."""
    if uri.startswith(_SQLITE) and len(uri) > len(_SQLITE):
        return Path(uri[len(_SQLITE):])
    return None


def local_store_missing(uri: str) -> Path | None:
    """The SQLite file of a local store that does not exist yet (reading it would create it), else None."""
    db = local_store_file(uri)
    return db if db is not None and not db.exists() else None


def local_artifact_root(uri: str) -> str | None:
    """Artifacts next to a local SQLite store; a server decides for itself (--serve-artifacts)."""
    db = local_store_file(uri)
    return (db.parent / "mlartifacts").resolve().as_uri() if db is not None else None


_SQLITE_HEADER = b"SQLite format 3\x00"
_FIX = "restore it from a backup, or point --results-dir elsewhere"


def check_local_store(db: Path) -> None:
    """An existing SQLite store that is usable: a file, writable, and a SQLite database that is not damaged.
    Judged with the standard library alone, so a damaged store is reported before any work (MLflow itself
    would retry for minutes or print a long traceback)."""
    if db.is_dir():
        raise TrackingError(f"the MLflow store {db} is a folder; expected a SQLite file ({_FIX})")
    if not db.exists():
        return
    try:
        with open(db, "r+b") as handle:  # opening for writing changes nothing; it fails on a read-only file
            header = handle.read(100)
    except OSError as exc:
        raise TrackingError(f"the MLflow store {db} is not writable ({exc.strerror or exc}); make it writable "
                            "(chmod u+w, chattr -i) or point --results-dir elsewhere") from None
    if not header.startswith(_SQLITE_HEADER):
        what = "empty (0 bytes)" if not header else "not a SQLite database"
        raise TrackingError(f"the MLflow store {db} is {what}: damaged; {_FIX}")
    _check_size(db, header)
    tables = _tables(db)
    broken = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
    if broken:
        raise TrackingError(f"the MLflow store {db} holds a half-done schema migration ({broken[0]}); {_FIX}")
    _check_belongs(db, tables)


# A full integrity check reads every page: worth it for a small store, minutes for a large one.
_QUICK_CHECK_BYTES = 64 * 2**20


def _check_size(db: Path, header: bytes) -> None:
    """The file holds as many pages as its header says (a truncated copy does not)."""
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if len(header) < 100 or page_size < 512 or page_size & (page_size - 1):
        raise TrackingError(f"the MLflow store {db} is damaged (its SQLite header is not valid); {_FIX}")
    pages, valid_for, changes = (int.from_bytes(header[a:a + 4], "big") for a in (28, 92, 24))
    if valid_for == changes and db.stat().st_size < pages * page_size:
        raise TrackingError(f"the MLflow store {db} is damaged (truncated: {db.stat().st_size} of "
                            f"{pages * page_size} bytes); {_FIX}")


def _tables(db: Path) -> set[str]:
    """The store's table names, read-only; a damaged schema (or, for a small store, any damaged page) is
    a TrackingError."""
    import sqlite3

    try:
        connection = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if db.stat().st_size <= _QUICK_CHECK_BYTES:
                verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
                if verdict != "ok":
                    raise TrackingError(f"the MLflow store {db} is damaged (SQLite: {verdict[:200]}); {_FIX}")
        finally:
            connection.close()
    except sqlite3.Error as exc:
        from ganmix.tracking.store_guard import busy_line, is_locked_error

        if is_locked_error(exc):  # another process holds it: busy, never "damaged"
            raise TrackingError(busy_line(db)) from None
        raise TrackingError(f"the MLflow store {db} is damaged ({exc}); {_FIX}") from None
    return tables


def _check_belongs(db: Path, tables: set[str]) -> None:
    """Refuse a database that is another program's, and a results folder moved or copied away from where
    its store records its artifacts (tracking/store_guard.py): MLflow would write into either."""
    import sqlite3

    from ganmix.tracking.store_guard import foreign_line, foreign_tables, moved_line

    foreign = foreign_tables(tables)
    if foreign:
        raise TrackingError(foreign_line(db, foreign))
    if "experiments" not in tables:
        return
    connection = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        moved = moved_line(db, connection)
    finally:
        connection.close()
    if moved:
        raise TrackingError(moved)


def one_line(exc: BaseException, limit: int = 200) -> str:
    """`Type: first line` of an error, at most `limit` characters: library errors span many lines."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_local_store_unless_busy(db: Path) -> None:
    """check_local_store for the pre-flight checks, which take no lock: a store that another command is
    creating or migrating right now (its lock is held) looks half-written, so it is left to be judged
    under the lock (tracking.store.open_local_store) instead of being called damaged."""
    from filelock import FileLock, Timeout

    lock = db.with_name(db.name + ".lock")
    if not db.exists() or not lock.exists():
        check_local_store(db)
        return
    try:
        with FileLock(lock, timeout=0):
            check_local_store(db)
    except Timeout:
        return
