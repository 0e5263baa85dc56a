"""The demo search (`ganmix search` on digits, the default spec), timed for this checkout and an older commit
side by side, taking turns, several runs each: wall time, when the first trial started (seconds from the
command's start to its first trial run's start_time in MLflow), and the machine's busy CPU seconds during the
run (Linux's /proc/stat: on an idle machine, what the command and every process it started used, Ray's
included). The demo is CPU-bound, and its CPU time is steadier than its wall time on a machine whose speed
drifts.

The older commit runs from a fresh `git worktree` of it, put first on PYTHONPATH through a `ganmix` package
of symlinks (the installed editable ganmix maps the same names to this checkout): the same interpreter and
the same installed packages, only ganmix's own code differs. Each run gets a fresh results folder and, unless
--warm-cache, a fresh user cache (GANMIX_CACHE: the store template, the reference classifier), so every run
pays what a first demo on a new machine pays. Bytecode (--bytecode): by default each variant's own modules are
as its Makefile's set-up leaves them (compiled ahead of time where its Makefile does that, else source only,
which where PYTHONDONTWRITEBYTECODE is set every process compiles again); `both` compiles both, so that only
the code differs; `none` compiles neither.

    python bench/bench_demo.py                       # this checkout vs eff37b0, 3 runs each
    python bench/bench_demo.py --old f0f7079 --runs 2 --warm-cache
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("search", "models", "datasets", "tracking")  # the four folders that install as ganmix.<name>


def shim(checkout: Path, where: Path) -> Path:
    """A folder holding a `ganmix` package whose subpackages are symlinks into `checkout`."""
    package = where / "ganmix"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in PACKAGES:
        (package / name).symlink_to(checkout / name, target_is_directory=True)
    return where


def first_trial_start_ms(results: Path) -> tuple[int | None, int | None]:
    """(start of the search's parent run, start of its first trial run) in ms since the epoch, from the
    results folder's SQLite store; None where there is none."""
    stores = sorted(results.glob("*.db"))
    if not stores:
        return None, None
    connection = sqlite3.connect(f"{stores[0].resolve().as_uri()}?mode=ro", uri=True)
    try:
        parent = connection.execute("SELECT MIN(r.start_time) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                                    "WHERE t.key = 'ganmix.kind' AND t.value = 'search'").fetchone()[0]
        trial = connection.execute("SELECT MIN(r.start_time) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                                   "WHERE t.key = 'mlflow.parentRunId'").fetchone()[0]
    finally:
        connection.close()
    return parent, trial


def set_bytecode(checkout: Path, compiled: bool) -> None:
    """Compile the checkout's four package folders ahead of time, or remove their bytecode."""
    folders = [checkout / name for name in PACKAGES]
    if compiled:
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", *map(str, folders)], check=True,
                       stdout=subprocess.DEVNULL)
        return
    for folder in folders:
        for cache in folder.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)


def compiles_at_setup(checkout: Path) -> bool:
    """Whether the checkout's Makefile compiles ganmix's modules ahead of time (`make bytecode`)."""
    makefile = checkout / "Makefile"
    return makefile.is_file() and "compileall" in makefile.read_text()


def busy_cpu_s() -> float | None:
    """The machine's busy CPU seconds since boot, all cores (user, nice, system, irq, softirq; not idle, iowait
    or steal); None where /proc/stat is not there."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def one_run(label: str, pythonpath: str | None, work: Path, *, extra: list[str], cache: Path | None,
            timeout_s: float) -> dict[str, object]:
    results = work / "results"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    if cache is not None:
        env["GANMIX_CACHE"] = str(cache)
    command = [sys.executable, "-m", "ganmix.search.cli", "search", "--results-dir", str(results), "--quiet", *extra]
    load_before = os.getloadavg()[0]
    busy_before = busy_cpu_s()
    started_ms, started = time.time() * 1000, time.monotonic()
    with (work / "output.log").open("wb") as log:
        try:
            code = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    wall = time.monotonic() - started
    busy_after = busy_cpu_s()
    _, trial = first_trial_start_ms(results)
    return {"variant": label, "exit": code, "wall_s": round(wall, 1),
            "first_trial_s": round((trial - started_ms) / 1000, 1) if trial else None,
            "cpu_s": round(busy_after - busy_before, 1) if busy_before is not None and busy_after is not None else None,
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", default="eff37b0", help="the older commit to compare with (default eff37b0)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each, taking turns (default 3)")
    parser.add_argument("--warm-cache", action="store_true",
                        help="one user cache per variant, kept across its runs (default: a fresh one per run)")
    parser.add_argument("--bytecode", choices=("setup", "both", "none"), default="setup",
                        help="ganmix's modules compiled ahead of time as each variant's Makefile leaves them "
                             "(default), in both, or in neither")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds one run may take")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("search_args", nargs="*", help="extra `ganmix search` arguments (after --)")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="ganmix-bench-demo-"))
    old = scratch / "old-checkout"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.old], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True).stdout.strip())
    for checkout in (REPO, old):
        set_bytecode(checkout, compiles_at_setup(checkout) if args.bytecode == "setup" else args.bytecode == "both")
    variants = [(f"this checkout ({head}{', modified' if dirty else ''})", None),
                (f"{args.old}", str(shim(old, scratch / "old-shim")))]
    rows: list[dict[str, object]] = []
    try:
        for round_ in range(args.runs):
            order = variants if round_ % 2 == 0 else variants[::-1]  # taking turns: neither always goes first
            for label, pythonpath in order:
                work = scratch / f"run-{len(rows)}"
                work.mkdir()
                cache = (scratch / f"cache-{label[:8]}") if args.warm_cache else work / "user-cache"
                row = one_run(label, pythonpath, work, extra=args.search_args, cache=cache, timeout_s=args.timeout)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print("\n| variant | runs | wall s (each) | median wall s | first trial s (each) | machine CPU s (each) "
          "| median CPU s | load 1-min (before runs) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, _ in variants:
        mine = [r for r in rows if r["variant"] == label]
        walls = [float(r["wall_s"]) for r in mine if r["exit"] == 0]
        cpus = [float(r["cpu_s"]) for r in mine if r["exit"] == 0 and r["cpu_s"] is not None]
        firsts = [r["first_trial_s"] for r in mine]
        print(f"| {label} | {len(mine)} | {', '.join(str(r['wall_s']) for r in mine)} | "
              f"{round(statistics.median(walls), 1) if walls else '-'} | {', '.join(str(f) for f in firsts)} | "
              f"{', '.join(str(r['cpu_s']) for r in mine)} | {round(statistics.median(cpus), 1) if cpus else '-'} | "
              f"{', '.join(str(r['load_before']) for r in mine)} |")
    failed = [r for r in rows if r["exit"] != 0]
    if failed:
        print(f"\n{len(failed)} run(s) did not exit 0; their logs are under {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"bench": "demo", "rows": rows}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
