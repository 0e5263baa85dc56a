"""models/files.py: the one atomic write (unique temporary names) and the one lock type."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ganmix.models.files import atomic_path, atomic_write, file_lock


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "recipe.yaml"
    atomic_write(target, "old\n")
    with pytest.raises(RuntimeError, match="half way"):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError("half way")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["recipe.yaml"]


def test_concurrent_writers_never_clash(tmp_path: Path) -> None:
    """Writers of one file each get their own temporary (the old fixed `.tmp` name let two clash)."""
    target = tmp_path / "shared.bin"
    payloads = [bytes([i]) * 100_000 for i in range(8)]
    errors: list[BaseException] = []

    def write(data: bytes) -> None:
        try:
            for _ in range(5):
                atomic_write(target, data)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_bytes() in payloads  # one writer's whole file, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]


def test_the_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    from filelock import Timeout

    target = tmp_path / "store" / "mlflow.db"
    with file_lock(target):
        assert (tmp_path / "store" / "mlflow.db.lock").exists()
        with pytest.raises(Timeout):
            file_lock(target, timeout=0.1).acquire()
    with file_lock(target, timeout=0.1):
        pass  # released by the first holder
