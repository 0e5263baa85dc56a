"""Stores ganmix must not write to, judged before MLflow touches them (issue 25): a SQLite file that is another
program's database, a store another process holds locked (busy, not damaged), and a results folder moved or
copied away from where its store says its artifacts are. Standard library only (pre-flight runs it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ganmix.tracking.claims import holders_text

# Tables every MLflow store has had since its first schema (MLflow creates them first); a database with
# tables but neither of these is someone else's.
_MLFLOW_CORE = frozenset({"experiments", "runs"})
# The folder next to a local store where ganmix puts its experiments' artifacts (tracking/location.py).
ARTIFACTS_FOLDER = "mlartifacts"


def busy_line(db: Path, what: str = "holds a lock on it") -> str:
    return (f"the MLflow store {db} is busy: {holders_text(db)} {what}; wait for it to finish (or end it), "
            "then run this again")


def is_locked_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "sqlite_busy" in text


def foreign_tables(tables: set[str]) -> list[str]:
    """The tables of a database that is not an MLflow store: tables, none of them MLflow's core ones (empty
    for an MLflow store, an empty file, or one MLflow's schema versioning has only begun)."""
    own = {t for t in tables if not t.startswith(("sqlite_", "alembic_", "_alembic_"))}
    return [] if not own or own & _MLFLOW_CORE else sorted(own)


def foreign_line(db: Path, tables: list[str]) -> str:
    shown = ", ".join(tables[:3]) + (f" and {len(tables) - 3} more" if len(tables) > 3 else "")
    return (f"{db} is another program's SQLite database (tables {shown}), not an MLflow store; ganmix leaves it "
            "untouched: point --results-dir (or --tracking-uri) at a folder of its own")


def moved_line(db: Path, connection: sqlite3.Connection) -> str | None:
    """One line when the store's folder is not where its experiments' artifacts were recorded: the results
    folder was moved (artifacts not found) or copied (the copy would write into the original). MLflow keeps
    only absolute artifact locations (its SQL store resolves every local path), so they cannot follow."""
    expected = (db.resolve().parent / ARTIFACTS_FOLDER)
    try:
        rows = connection.execute("SELECT artifact_location FROM experiments WHERE name LIKE 'ganmix/%'").fetchall()
    except sqlite3.Error:  # not the schema we know: MLflow judges it
        return None
    for (location,) in rows:
        if not isinstance(location, str) or not location.startswith("file:"):
            continue  # a server's or a bucket's artifacts do not move with the folder
        recorded = Path(unquote(urlsplit(location).path))
        if recorded.parent.name != ARTIFACTS_FOLDER or recorded.parent == expected:
            continue  # not laid out by ganmix, or where it belongs
        origin = recorded.parent.parent
        folder = db.resolve().parent
        if origin.exists():
            return (f"the results folder {folder} is a copy of {origin}: its MLflow store records artifacts in "
                    f"{origin}/{ARTIFACTS_FOLDER} by absolute path and would write into the original; use "
                    f"--results-dir {origin}, or start a new results folder")
        return (f"the results folder {folder} was moved from {origin}: its MLflow store records artifacts there by "
                f"absolute path and cannot find them; move it back to {origin} (then --results-dir {origin})")
    return None
