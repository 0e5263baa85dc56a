"""Results folders shared by several ganmix commands at once: which folders this process created, which
processes use a folder now, and who holds a lock. Clean-up after bad input removes only what this process
created and nobody else uses (issue 25: a failed command once deleted the results of a search running beside it).

A command that writes to a results folder holds a shared `flock` on `<folder>/.ganmix-users` for as long as it
runs (the OS drops it when the process dies); clean-up takes it exclusively, without waiting, before it
removes anything. Standard library only: the CLI calls it after bad input, before MLflow is imported.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

USERS_FILE = ".ganmix-users"

_created: list[Path] = []  # folders this process made (mkdir succeeded here), outermost first
_held: dict[Path, int] = {}  # folder -> the descriptor of its users file, locked shared


def use_folder(folder: str | Path) -> Path:
    """Create `folder` where missing (remembering the levels this process made) and register this process as
    one of its users until it exits. Safe against a clean-up removing the folder meanwhile: the users file
    is checked to still be the one on disk once locked."""
    folder = Path(folder).expanduser().absolute()
    if folder in _held:
        return folder
    while True:
        _make(folder)
        path = folder / USERS_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # removed between mkdir and open by a clean-up: make it again
            continue
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits out a clean-up in progress (it holds the lock exclusively)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            _held[folder] = fd
            return folder
        os.close(fd)  # the folder was removed while we waited: start over with a fresh one


def _make(folder: Path) -> None:
    missing = []
    level = folder
    while not level.exists() and level != level.parent:
        missing.append(level)
        level = level.parent
    for level in reversed(missing):
        try:
            level.mkdir()
        except FileExistsError:  # another process made it first: it is theirs
            continue
        _created.append(level)


def created_here() -> list[Path]:
    return list(_created)


def remove_created(folder: str | Path) -> bool:
    """Remove `folder` (and the parents this process made for it) when this process created it and no other
    process uses it; True when removed. A folder someone else created, or one another command registered as
    its user, is left exactly as it is."""
    folder = Path(folder).expanduser().absolute()
    if folder not in _created or not folder.is_dir():
        return False
    fd = _held.pop(folder, None)
    if fd is None:
        fd = os.open(folder / USERS_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:  # conversion to exclusive: fails at once while any other process holds it shared
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if _store_lock_busy(folder):
            return False
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(fd)
    for level in reversed([p for p in _created if p in folder.parents]):
        try:
            level.rmdir()  # only while empty: a parent may hold other things by now
        except OSError:
            break
    _created[:] = [p for p in _created if p != folder and p not in folder.parents]
    return True


def mark() -> int:
    """Where this process's record of created folders stands: one command's clean-up starts from here (a
    program, or a test, may run several commands in one process)."""
    return len(_created)


def remove_all_created(since: int = 0) -> None:
    """remove_created for every folder created (and used) since `mark()` gave `since`: the results folder,
    a new store's folder."""
    for folder in [f for f in _created[since:] if f in _held]:
        remove_created(folder)


def _store_lock_busy(folder: Path) -> bool:
    """Another process holds the lock of the folder's MLflow store (creating or migrating it)."""
    from ganmix.tracking.location import STORE_FILE

    lock = folder / f"{STORE_FILE}.lock"
    return lock.exists() and bool(set(lock_holders(lock)) - {os.getpid()})


def lock_holders(path: str | Path) -> list[int]:
    """The ids of the processes holding a lock (flock or POSIX, SQLite's kind) on `path`, from /proc/locks;
    empty where the system does not say (not Linux) or nobody holds one."""
    try:
        info = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    pids: list[int] = []
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6:  # a process waiting for the lock, not holding it
            continue
        if fields[5] == wanted and fields[4].isdigit() and int(fields[4]) not in pids:
            pids.append(int(fields[4]))
    return pids


def describe_process(pid: int) -> str:
    """`pid 123 (ganmix search --name x ...)`: its command line, cut short; just the pid when unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"pid {pid}"
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    if len(words) > 1 and Path(words[0]).name.startswith("python") and words[1] == "-m":
        words = words[2:]  # `python -m ganmix.search.cli search ...` reads as the command it is
    if words and words[0] == "ganmix.search.cli":
        words[0] = "ganmix"
    if words:
        words[0] = Path(words[0]).name
    text = " ".join(words)
    return f"pid {pid} ({text[:120]}{'...' if len(text) > 120 else ''})" if text else f"pid {pid}"


def holders_text(path: str | Path) -> str:
    """Who holds a lock on `path`, for an error line: `pid 123 (ganmix search ...)`, or "another process"."""
    pids = [p for p in lock_holders(path) if p != os.getpid()]
    return ", ".join(describe_process(p) for p in pids) if pids else "another process"
