"""Fetching a missing MedMNIST .npz through the medmnist package, failing fast when offline."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ganmix.datasets._medmnist_info import medmnist_file

# medmnist downloads via torchvision's urlopen, which sets no timeout; a stalled connection
# would hang a trial forever, so every socket opened during the download gets this limit.
DOWNLOAD_TIMEOUT_S = 30.0


class DownloadFailed(Exception):
    """The download did not produce the file; str() is a one-line reason."""


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def root_cause(exc: BaseException) -> str:
    """'Type: first line' of the innermost exception: medmnist wraps the real error in a long text."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__


def download_medmnist(flag: str, data_dir: Path, *, size: int = 28, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download MedMNIST's file of `flag` at `size` px into data_dir with the medmnist package (its `size`
    argument picks ``<flag>.npz`` or ``<flag>_<size>.npz``); raise DownloadFailed. A failed download leaves
    nothing behind: not the data folder, nor the ~/.medmnist that importing medmnist makes."""
    created = [p for p in (data_dir, Path.home() / ".medmnist") if not p.exists()]
    try:
        _download(flag, data_dir, size, timeout_s)
    except DownloadFailed:
        for folder in created:
            _remove_empty_tree(folder)
        raise


def _download(flag: str, data_dir: Path, size: int, timeout_s: float) -> None:
    file = data_dir / medmnist_file(flag, size)
    try:
        import medmnist  # optional at run time: only needed to download
    except ImportError as exc:
        raise DownloadFailed(f"the medmnist package is not importable ({root_cause(exc)})") from exc
    try:
        info = medmnist.INFO[flag]
        dataset_class = getattr(medmnist, info["python_class"])
        data_dir.mkdir(parents=True, exist_ok=True)  # medmnist refuses a root that does not exist
        with _socket_timeout(timeout_s):
            dataset_class(split="train", download=True, root=str(data_dir), size=size)
    except Exception as exc:  # medmnist raises bare RuntimeErrors; report the underlying reason
        raise DownloadFailed(root_cause(exc)) from exc
    if not file.is_file():
        raise DownloadFailed(f"medmnist reported success but {file} does not exist")


def _remove_empty_tree(folder: Path) -> None:
    """Remove `folder` and its empty sub-folders; a folder holding any file stays."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir():
            try:
                path.rmdir()
            except OSError:
                return
    try:
        folder.rmdir()
    except OSError:
        pass
