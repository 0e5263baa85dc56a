"""Writing files safely: one atomic-write helper and one lock type for every module that writes.

Light on purpose (no torch): the CLI's checks, the tracking store's lock and `best --export` use it too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A unique temporary file beside `path` for the caller to fill (torch.save, np.savez, ...); it replaces
    `path` in one rename when the block ends without an error, and is removed otherwise. Unique names mean
    two writers never clash; the same folder means the rename is atomic (one file system)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write `data` to `path` so that a reader sees the old file or the whole new one, never a part."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)


def file_lock(path: str | Path, *, timeout: float = -1) -> FileLock:
    """An inter-process lock guarding `path`, held in `<path>.lock` (released by the OS if its holder dies).
    `timeout` seconds to wait; -1 waits for as long as it takes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path.with_name(path.name + ".lock"), timeout=timeout)


def user_cache_dir(*parts: str) -> Path:
    """The user-level cache shared by every results folder: $GANMIX_CACHE, else $XDG_CACHE_HOME/ganmix, else
    ~/.cache/ganmix (what it holds is keyed by content and version, so sharing it is safe)."""
    env = os.environ.get("GANMIX_CACHE")
    root = Path(env).expanduser() if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ganmix"
    return root.joinpath(*parts)
