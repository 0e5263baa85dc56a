"""Pre-flight checks of names, files and folders: no torch, Ray or MLflow, and nothing created (writability
is probed with a temporary file that is removed again)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ganmix.search.preflight.errors import PreflightError, quote

# Search names become folder names (Tune's experiment folder) and MLflow run names.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def nonempty(text: str) -> str:
    """argparse type for text flags: an empty value is a mistake (a shell variable that was not set)."""
    import argparse

    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def nonempty_path(text: str) -> Path:
    """argparse type for path flags: Path("") would silently mean the current folder, and a path longer than
    the file system allows would fail at its first use, as a traceback."""
    import argparse

    path = Path(nonempty(text)).expanduser()
    if any(len(os.fsencode(part)) > 255 for part in path.parts) or len(os.fsencode(str(path))) > 4096:
        raise argparse.ArgumentTypeError(f"the path is too long for the file system ({len(text)} characters)")
    return path


def check_name(name: str, label: str = "name") -> None:
    """A search name is a path component (Tune's folder) on every node: no separators, no dot-dot."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise PreflightError(f"{label} must be a plain name (letters, digits, '.', '_', '-'; starting with a "
                             f"letter or digit; at most 128 characters), got {quote(name)}")


def check_input_file(path: Path, label: str, expected: str) -> None:
    """An existing, non-empty, readable file (its content is judged by whoever parses it)."""
    if path.is_dir():
        raise PreflightError(f"{label} {path} is a folder; expected {expected}")
    if not path.is_file():
        what = "is not a regular file (a device, pipe or socket)" if path.exists() else "does not exist"
        raise PreflightError(f"{label} {path} {what}; expected {expected}")
    if not os.access(path, os.R_OK):
        raise PreflightError(f"{label} {path} is not readable; expected {expected}")
    if path.stat().st_size == 0:
        raise PreflightError(f"{label} {path} is empty; expected {expected}")


def check_output_file(path: Path, label: str, *, force: bool) -> None:
    """A file about to be written: not a folder, in a writable folder that exists, and not an existing file
    unless `force` (nothing is overwritten without being asked)."""
    if path.is_dir():
        raise PreflightError(f"{label} {path} is a folder; expected a file name such as {path / 'recipe.yaml'}")
    parent = path.parent
    if not parent.is_dir():
        what = "is a file" if parent.exists() else "does not exist"
        raise PreflightError(f"{label} {path}: its folder {parent} {what}; create the folder or pick another path")
    check_writable_dir(parent, label)
    if path.exists() and not force:
        raise PreflightError(f"{label} {path} exists; pass --force to overwrite it, or pick another path")


def check_port(port: int, label: str = "--port") -> None:
    if not 1 <= port <= 65535:
        raise PreflightError(f"{label} must be in 1..65535 (a TCP port), got {port}")


def check_writable_dir(path: Path | str, label: str) -> None:
    """`path` is a writable folder, or one can be created there; creates nothing (the probe file is removed)."""
    path = Path(path).expanduser()
    if any(len(os.fsencode(part)) > 255 for part in path.parts) or len(os.fsencode(str(path))) > 4096:
        raise PreflightError(f"{label} {quote(str(path))}: the path is too long for the file system")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise PreflightError(f"{label} {path} {what}; expected a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        where = "" if existing == path else f" (cannot create it in {existing})"
        raise PreflightError(f"{label} {path} is not writable{where}: {exc.strerror or exc}") from None


def check_tune_state(folder: Path, name: str) -> None:
    """The Tune state a resume reads is whole: tuner.pkl and the newest experiment_state-*.json holding its
    trials. Tune itself reads an empty or truncated state as a search with no trials and runs it all again
    over the finished one (issue 25), so a damaged state is one line here, before anything changes."""
    import json

    problem = ""
    tuner = folder / "tuner.pkl"
    states = sorted(folder.glob("experiment_state-*.json"))
    if not tuner.is_file() or tuner.stat().st_size == 0:
        problem = f"{tuner} is empty" if tuner.is_file() else f"{tuner} is missing"
    elif not states:
        problem = f"no experiment_state-*.json in {folder}"
    elif truncated := [p for p in sorted(folder.glob("*.pkl")) if not _whole_pickle(p)]:
        problem = f"{truncated[0]} is truncated"
    else:
        try:
            data = json.loads(states[-1].read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problem = f"{states[-1]} cannot be read ({type(exc).__name__}: {str(exc)[:100]})"
        else:
            if not isinstance(data, dict) or not isinstance(data.get("trial_data"), list):
                problem = f"{states[-1]} holds no trials"
    if problem:
        raise PreflightError(f"--resume {name}: its Tune state is damaged: {problem}; nothing was changed (restore "
                             "the folder from a backup to resume it; its finished trials stay in MLflow)")


def _whole_pickle(path: Path) -> bool:
    """A pickle ends with its STOP opcode ("."): a file cut short does not (read without unpickling it)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"."
    except OSError:
        return False
