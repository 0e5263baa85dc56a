"""`ganmix search --resume NAME` alone continues an interrupted search as it was started: its data folder,
image size and scarcity come from the search's parent run, the progress line counts on from the trials that
finished before the interruption, and no library warning reaches the console. A real search on a copy of
breastmnist, interrupted with Ctrl+C (SIGINT to its process group), then resumed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import require_shared

TRIALS = 5
NAME = "scarce"
SPEC = {
    "dataset": "breastmnist", "trials": TRIALS, "max_concurrent": 1, "cpus_per_trial": 1, "seed": 0,
    "finalists": {"count": 0},  # the finalists stage is not what this tests: no extra runs
    "train_per_class": 40, "image_size": 16,
    "space": {"generator_epochs": {"type": "int", "low": 1, "high": 3},
              "synthetic_ratio": {"type": "float", "low": 0.2, "high": 1.0}, "generator": ["dcgan", "cvae"]},
    "fixed": {"classifier_epochs": 3, "classifier_min_steps": 0, "latent_dim": 16},
}


def _ganmix(args: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "ganmix.search.cli", *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _finished_lines(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in re.findall(r"\] trial (\d+)/(\d+) ", text)]


def test_interrupted_search_on_a_data_folder_resumes_by_name_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(require_shared("breastmnist.npz"), data / "breastmnist.npz")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    home = tmp_path / "home"  # a download would land in HOME/.ganmix/data: it must not happen
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANMIX_DATA_DIR", "RAY_ADDRESS")}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1", GANMIX_RESULTS=str(tmp_path / "elsewhere"))
    results = ["--results-dir", str(tmp_path / "res")]

    first_log = tmp_path / "first.log"
    first = _ganmix(["search", "--config", "spec.yaml", "--data-dir", str(data), "--name", NAME,
                     "--no-sample-metrics", *results], cwd=tmp_path, env=env, log=first_log)
    try:
        deadline = time.monotonic() + 900
        while len(_finished_lines(first_log.read_text())) < 2:
            assert first.poll() is None, first_log.read_text()
            assert time.monotonic() < deadline, "no two trials finished in 900 s:\n" + first_log.read_text()
            time.sleep(0.5)
        os.killpg(first.pid, signal.SIGINT)
        assert first.wait(timeout=300) == 130, first_log.read_text()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    finished_before = len(_finished_lines(first_log.read_text()))
    assert finished_before < TRIALS, "the search ended before it could be interrupted"

    # The data folder it recorded no longer holds the file: one line naming both, and nothing downloaded.
    (data / "breastmnist.npz").rename(tmp_path / "moved.npz")
    done = subprocess.run([sys.executable, "-m", "ganmix.search.cli", "search", "--resume", NAME, *results],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    assert done.returncode != 0 and len(lines) == 1, done.stderr + done.stdout
    assert str(data) in lines[0] and "breastmnist.npz" in lines[0], lines[0]
    assert not (home / ".ganmix").exists()
    (tmp_path / "moved.npz").rename(data / "breastmnist.npz")

    resume_log = tmp_path / "resume.log"
    resumed = _ganmix(["search", "--resume", NAME, *results], cwd=tmp_path, env=env, log=resume_log)
    try:
        assert resumed.wait(timeout=1800) == 0, resume_log.read_text()
    finally:
        if resumed.poll() is None:
            os.killpg(resumed.pid, signal.SIGKILL)
    output = resume_log.read_text()
    assert f"resuming search {NAME} as it was started: breastmnist from {data} (its data folder)" in output
    assert "image size 16" in output and "at most 40 train images per class" in output
    assert "no sample metrics" in output  # the first start's --no-sample-metrics holds
    seeded = re.search(r"resumed: (\d+)/(\d+) trials finished before the interruption \| best val_auc", output)
    assert seeded and int(seeded[2]) == TRIALS, output
    counted = _finished_lines(output)
    # The counter goes on from the trials Tune had finished, up to every trial of the search.
    assert [n for n, _ in counted] == list(range(int(seeded[1]) + 1, TRIALS + 1)), output
    assert int(seeded[1]) >= 1
    assert f"search {NAME}: {TRIALS} trials, 0 failed" in output
    for noise in ("Warning", "warn(", "already reported", "Traceback", "Downloading"):
        assert noise not in output, output
    assert not (home / ".ganmix").exists()

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'res' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string=f"tags.`ganmix.search` = '{NAME}' AND tags.`ganmix.kind` = 'trial'")
    finished = {r.data.tags["ganmix.trial_id"] for r in runs if r.info.status == "FINISHED"}
    assert len(finished) == TRIALS, [(r.data.tags["ganmix.trial_id"], r.info.status) for r in runs]
