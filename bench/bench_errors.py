"""Seconds from `ganmix ...` to its one-line error, for a few bad inputs (issue 10: bad flags and specs in <= 2 s).

    python bench/bench_errors.py [--repeats 3] [--json PATH]

Each case runs the CLI as a fresh process (what a user waits for), `--repeats` times; the table shows the
median and the slowest run, and which stage judged the input: flags (no torch, Ray or MLflow imported),
spec (the Recipe's validation imports torch), data (the data set is read), network (a TCP connect that is
refused at once). Numbers are inflated on a loaded machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = [  # (stage, name, argv); {tmp} is a scratch folder
    ("flags", "--trials 0", ["search", "--trials", "0"]),
    ("flags", "--name ../../escape", ["search", "--name", "../../escape"]),
    ("flags", "--cpus-per-trial 100", ["search", "--cpus-per-trial", "100"]),
    ("flags", "--gpus-per-trial 2 (no GPU)", ["search", "--gpus-per-trial", "2"]),
    ("flags", "--results-dir FILE", ["search", "--results-dir", "{tmp}/a_file"]),
    ("flags", "--tracking-uri foo://x", ["search", "--tracking-uri", "foo://x"]),
    ("network", "--address 127.0.0.1:1", ["search", "--address", "127.0.0.1:1"]),
    ("network", "--storage s3:// (endpoint closed)", ["search", "--storage", "s3://bucket/x"]),
    ("flags", "ui --port 99999", ["ui", "--port", "99999"]),
    ("spec", "--image-size 128", ["search", "--image-size", "128"]),
    ("spec", "generator_space: dcgan latent_dim low 0", ["search", "--config", "{tmp}/latent0.yaml"]),
    ("data", "text file named .npz", ["search", "--dataset", "breastmnist", "--data-dir", "{tmp}/text"]),
    ("data", "empty val split", ["search", "--dataset", "breastmnist", "--data-dir", "{tmp}/empty_val"]),
]


def prepare(tmp: Path) -> None:
    (tmp / "a_file").write_text("x\n")
    (tmp / "latent0.yaml").write_text("generator_space:\n  dcgan:\n    latent_dim: {type: int, low: 0, high: 64}\n")
    (tmp / "text").mkdir()
    (tmp / "text" / "breastmnist.npz").write_text("text\n")
    (tmp / "empty_val").mkdir()
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 8), ("val", 0), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    np.savez(tmp / "empty_val" / "breastmnist.npz", **arrays)


def run_case(argv: list[str], tmp: Path, env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ganmix.search.cli", *[a.replace("{tmp}", str(tmp)) for a in argv]],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    line = (done.stderr or done.stdout).strip().splitlines()
    return seconds, done.returncode, line[-1] if line else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        prepare(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANMIX_RESULTS")}
        env.update(GANMIX_DATA_DIR=str(tmp / "no_data"), AWS_ENDPOINT_URL="http://127.0.0.1:1")
        print(f"{'stage':<8} {'case':<34} {'median s':>8} {'max s':>6}  exit  first words of the error")
        for stage, name, argv in CASES:
            times, code, line = [], 0, ""
            for _ in range(args.repeats):
                seconds, code, line = run_case(argv, tmp, env)
                times.append(seconds)
            median = statistics.median(times)
            print(f"{stage:<8} {name:<34} {median:8.2f} {max(times):6.2f}  {code:>4}  {line[:60]}", flush=True)
            rows.append((f"{stage}: {name} (s)", f"{median:.2f}"))
    load = (load_before, os.getloadavg()[0])
    print(f"\n{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; load average {load[0]:.1f} before, "
          f"{load[1]:.1f} after")
    if args.json:
        args.json.write_text(json.dumps({"bench": "errors", "rows": [list(r) for r in rows], "load": list(load)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
