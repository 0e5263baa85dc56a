"""What every bad-input test shares: the input files, running one case (as a CLI process, or in this process
where torch is already imported), and the checks (exit code, one line, the expected words, no traceback,
nothing created, at most 200 characters of a quoted value)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from _ports import free_port

# Generous for a loaded 2-core CI machine; the speed itself is measured by bench/bench_errors.py.
TIME_LIMIT_S = 60
# An error line quotes at most 200 characters of a bad value; the rest of the line is the message.
LINE_LIMIT = 600
LONG = "a" * 5000


def closed_port() -> int:
    """A loopback port nothing listens on (drawn where Ray does not draw its own ports)."""
    return free_port()


def write_npz(path: Path, *, val: int = 4, test_classes: int = 2, constant: bool = False) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 8), ("val", val), ("test", 4)):
        images = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_images"] = np.zeros_like(images) if constant else images
        classes = test_classes if split == "test" else 2
        arrays[f"{split}_labels"] = (np.arange(n) % classes).reshape(n, 1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def make_inputs(root: Path, specs: dict[str, object], texts: dict[str, bytes] | None = None) -> Path:
    """The files the cases name: specs as YAML, raw files as bytes, and the usual suspects."""
    (root / "a_file").write_text("not a folder\n")
    (root / "a_dir").mkdir()
    for key, spec in specs.items():
        (root / f"{key}.yaml").write_text(yaml.safe_dump(spec))
    for name, data in (texts or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    read_only = root / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    return root


def half_migrated_store(path: Path) -> None:
    """A SQLite file as two concurrent MLflow migrations leave it: an `_alembic_tmp_` table behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.execute("CREATE TABLE _alembic_tmp_metrics (key VARCHAR(250))")
    connection.close()


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def run_case(inputs: Path, case: str, argv: list[str], *, in_process: bool, env_extra: dict[str, str | None],
             monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANMIX_RESULTS", "RAY_ADDRESS")
           and not k.startswith("DATABRICKS_")}
    env["GANMIX_DATA_DIR"] = str(inputs / "no_data")  # never the user's data folder
    env.update({k: v for k, v in env_extra.items() if v is not None})
    for key in [k for k, v in env_extra.items() if v is None]:  # None: the variable is unset
        env.pop(key, None)
    work = inputs / f"work-{case}"  # the default --results-dir (./ganmix-results) would land here
    work.mkdir()
    started = time.monotonic()
    if in_process:
        returncode, output = _main_in_process(argv, work, env, monkeypatch, capsys)
    else:
        done = subprocess.run([sys.executable, "-m", "ganmix.search.cli", *argv], cwd=work, env=env,
                              capture_output=True, text=True, timeout=TIME_LIMIT_S * 3)
        returncode, output = done.returncode, (done.stderr + done.stdout).strip()
    return returncode, output, time.monotonic() - started


def _main_in_process(argv: list[str], work: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from ganmix.search.cli import main

    monkeypatch.chdir(work)
    for key in set(os.environ) - set(env):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    try:
        returncode = main(argv)
    except SystemExit as exc:  # argparse
        returncode = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return returncode, (captured.err + captured.out).strip()


def check_one_line(returncode: int, output: str, expected: str, seconds: float) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert returncode != 0, output
    assert "Traceback" not in output, output
    assert len(lines) == 1, output
    assert expected in lines[0], output
    assert len(lines[0]) <= LINE_LIMIT, f"{len(lines[0])} characters: {lines[0][:300]}"
    assert seconds < TIME_LIMIT_S, f"{seconds:.1f} s"


def bad_input_case(inputs: Path, case: str, argv: list[str], expected: str, *, in_process: bool,
                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                   env_extra: dict[str, str | None] | None = None) -> str:
    """Run one case and check it; returns its line."""
    values = {"{tmp}": str(inputs), "{port}": str(closed_port()), "{long}": LONG}
    argv = [fill(a, values) for a in argv]
    before = tree(inputs)
    returncode, output, seconds = run_case(inputs, case, argv, in_process=in_process, env_extra={
        k: v if v is None else fill(v, values) for k, v in (env_extra or {}).items()}, monkeypatch=monkeypatch,
        capsys=capsys)
    check_one_line(returncode, output, fill(expected, values), seconds)
    after = tree(inputs) - {f"work-{case}"}
    assert after == before, f"the failed command left files behind: {sorted(after - before)}"
    return output
