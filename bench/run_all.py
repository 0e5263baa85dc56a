"""Run every benchmark in bench/ and print one combined table (what `make bench` runs).

    python bench/run_all.py [--device cpu|cuda] [--threads 2] [--data PATH/breastmnist.npz]
                            [--only classifiers|generators|search ...] [--skip-demo]

Each benchmark runs as its own process (a fresh interpreter, so one's threads, caches and Ray
instance cannot colour another's numbers) and prints its own table as it goes; at the end this
prints all rows together with the machine (CPU count, torch version, device name) and the load
average, ready to paste into an issue note, then the headline numbers again: the GAN epoch time per
family, GAN epochs trained versus requested, time to first trial and the demo's wall time. The machine may be shared: a load average well
above the CPU count means the numbers are inflated; re-run the part that looks disturbed.
On 2 CPU cores the whole run takes about 6-8 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DEFAULT_DATA, Rows, default_device, machine_rows

HERE = Path(__file__).resolve().parent
BENCHES = ("classifiers", "generators", "search")
# Rows repeated at the end as the headline numbers (issue 9's targets): GAN epoch time per family, GAN epochs
# trained vs requested, time to first trial, demo wall time.
HEADLINES = ("epoch, batch 64 (s)", "GAN epochs trained / requested", "time to first trial", "demo total wall")


def command(name: str, args: argparse.Namespace, json_path: Path) -> list[str]:
    base = [sys.executable, str(HERE / f"bench_{name}.py"), "--device", args.device, "--threads", str(args.threads),
            "--json", str(json_path)]
    if name == "search":
        return base + ["--data-dir", str(args.data.parent)] + (["--skip-demo"] if args.skip_demo else [])
    if name == "generators":  # 28 px only: the 64/128 px rows, the peer and the 128-px trial take bench_generators.py
        return base + ["--data", str(args.data), "--sizes", "28", "--no-trial"]
    return base + ["--data", str(args.data)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=default_device(), help="default: cuda if available, else cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each benchmark")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="breastmnist.npz (or $GANMIX_BREASTMNIST)")
    parser.add_argument("--only", action="append", choices=BENCHES, help="run only these (repeatable)")
    parser.add_argument("--skip-demo", action="store_true", help="bench_search without the digits demo")
    parser.add_argument("--timeout", type=float, default=1500, help="seconds allowed for each benchmark")
    args = parser.parse_args()
    args.data = args.data.resolve()
    if not args.data.is_file():
        parser.error(f"{args.data} not found; pass --data or set GANMIX_BREASTMNIST")

    started, load_start = time.time(), os.getloadavg()
    results = _run_benches(args)
    load_end = os.getloadavg()
    header: Rows = machine_rows(args.device) + [
        ("torch threads per benchmark", str(args.threads)),
        ("date (UTC)", time.strftime("%Y-%m-%d %H:%M", time.gmtime(started))),
        ("load average 1/5/15 min, start", " / ".join(f"{x:.2f}" for x in load_start)),
        ("load average 1/5/15 min, end", " / ".join(f"{x:.2f}" for x in load_end)),
        ("total wall time (s)", f"{time.time() - started:.0f}"),
    ]
    _print_report(header, results)
    busy = max(load_start[0], load_end[0]) > (os.cpu_count() or 1)
    if busy:
        print(f"note: load average above the {os.cpu_count()} CPUs during the run: other processes shared the "
              "machine, so the times above are inflated; re-run the part that looks off (--only NAME).")
    return 0 if all(status == "exit 0" for _, _, status, _ in results) else 1


def _run_benches(args: argparse.Namespace) -> list[tuple[str, float, str, dict | None]]:
    """Each chosen benchmark in its own process: (name, seconds, exit status, its JSON results or None)."""
    results: list[tuple[str, float, str, dict | None]] = []
    with tempfile.TemporaryDirectory(prefix="ganmix-bench-") as tmp:
        for name in args.only or BENCHES:
            json_path = Path(tmp) / f"{name}.json"
            argv = command(name, args, json_path)
            print(f"\n===== bench_{name}.py =====", flush=True)
            t0 = time.perf_counter()
            try:
                status = f"exit {subprocess.run(argv, timeout=args.timeout).returncode}"
            except subprocess.TimeoutExpired:
                status = f"timed out after {args.timeout:.0f} s"
            seconds = time.perf_counter() - t0
            data = json.loads(json_path.read_text()) if json_path.is_file() else None
            results.append((name, seconds, status, data))
    return results


def _print_report(header: Rows, results: list[tuple[str, float, str, dict | None]]) -> None:
    """The machine, then every benchmark's rows, then the headline numbers again."""
    rows: list[tuple[str, str] | str] = ["ganmix benchmarks", *header]
    for name, seconds, status, data in results:
        rows.append(f"bench_{name}.py: {seconds:.0f} s, {status}")
        if data is None:
            rows.append(("  (no results)", "see its output above"))
            continue
        rows.extend((f"  {key}", value) for key, value in data["rows"])

    width = max(len(r[0]) for r in rows if isinstance(r, tuple))
    line = "=" * min(140, width + 60)
    print(f"\n{line}")
    for row in rows:
        if isinstance(row, str):
            print(f"--- {row} ---" if row != "ganmix benchmarks" else row)
        else:
            print(f"{row[0]:<{width}}  {row[1]}")
    print(line)
    headlines = [row for row in rows if isinstance(row, tuple) and any(h in row[0] for h in HEADLINES)]
    if headlines:
        print("headline numbers")
        for key, value in headlines:
            print(f"{key.strip():<{width}}  {value}")
        print(line)


if __name__ == "__main__":
    sys.exit(main())
