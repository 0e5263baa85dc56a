"""Bad flags fail fast with one clear line: exit code, one line naming the flag and what was expected, no
traceback, nothing created, no hang, at most 200 characters of a bad value. Flags are judged before torch,
Ray or MLflow are imported, so each case runs as its own CLI process (what a user waits for); the few that
need the generators' size range (torch) run in this process. bench/bench_errors.py times them.

Other kinds live beside this file: test_bad_inputs_files.py (spec and recipe files),
test_bad_inputs_store.py (tracking URIs, stores, output paths), test_bad_inputs_data.py (data sets)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from _bad_input_harness import bad_input_case, make_inputs
from ganmix.search.preflight import local_gpus

# (id, argv, what the one line must contain). {tmp}: the inputs folder; {port}: a closed local port;
# {long}: a 5,000-character value.
NUMBERS = [
    ("trials_zero", ["search", "--trials", "0"], "--trials must be an integer >= 1, got 0"),
    ("trials_text", ["search", "--trials", "x"], "argument --trials: invalid int value: 'x'"),
    ("max_concurrent_zero", ["search", "--max-concurrent", "0"], "--max-concurrent must be an integer >= 1"),
    ("cpus_zero", ["search", "--cpus-per-trial", "0"], "--cpus-per-trial must be a number > 0"),
    ("cpus_nan", ["search", "--cpus-per-trial", "nan"], "--cpus-per-trial must be a number > 0, got nan"),
    ("cpus_too_many", ["search", "--cpus-per-trial", "100"], "cpus_per_trial = 100 is more than"),
    ("gpus_negative", ["search", "--gpus-per-trial", "-1"], "--gpus-per-trial must be a number >= 0"),
    ("gpus_inf", ["search", "--gpus-per-trial", "inf"], "--gpus-per-trial must be a number >= 0"),
    ("gpus_absent", ["search", "--gpus-per-trial", "2"], "gpus_per_trial = 2"),
    ("time_budget_negative", ["search", "--time-budget", "-5"], "--time-budget must be a number of seconds > 0"),
    ("time_budget_zero", ["search", "--time-budget", "0"], "--time-budget must be a number of seconds > 0, got 0"),
    ("time_budget_nan", ["search", "--time-budget", "nan"], "--time-budget must be a number of seconds > 0, got nan"),
    ("time_budget_inf", ["search", "--time-budget", "inf"], "--time-budget must be a number of seconds > 0, got inf"),
    ("seed_negative", ["search", "--seed", "-1"], "--seed: seed must be an integer in [0, 4294967295], got -1"),
    ("seed_too_big", ["search", "--seed", "4294967296"], "--seed: seed must be an integer in [0, 4294967295]"),
    ("train_per_class_zero", ["search", "--train-per-class", "0"], "--train-per-class: train_per_class must be"),
    ("confirm_negative", ["search", "--confirm", "-1"], "--confirm must be an integer >= 0, got -1"),
    ("confirm_top_zero", ["search", "--confirm-top", "0"], "--confirm-top must be an integer >= 1, got 0"),
    ("confirm_seeds_zero", ["confirm", "--seeds", "0"], "--seeds must be an integer >= 1, got 0"),
    ("confirm_top_flag_zero", ["confirm", "--top", "0"], "--top must be an integer >= 1, got 0"),
    ("ui_port", ["ui", "--port", "99999"], "--port must be in 1..65535 (a TCP port), got 99999"),
    ("ui_port_zero", ["ui", "--port", "0"], "--port must be in 1..65535 (a TCP port), got 0"),
    ("metric_unknown", ["search", "--metric", "accuracy"], "invalid choice: 'accuracy'"),
    ("flag_unknown", ["search", "--budget", "3"], "unrecognized arguments: --budget"),
]
EMPTY = [(f"empty_{cmd}_{flag.strip('-').replace('-', '_')}", [cmd, flag, ""], f"argument {flag}: must not be empty")
         for cmd, flag in [("search", "--results-dir"), ("search", "--tracking-uri"), ("search", "--name"),
                           ("search", "--dataset"), ("search", "--config"), ("search", "--data-dir"),
                           ("search", "--storage"), ("search", "--address"), ("search", "--resume"),
                           ("best", "--export"), ("train", "--recipe"), ("confirm", "--name"), ("best", "--dataset"),
                           ("ui", "--results-dir")]]
NAMES_AND_PATHS = [
    ("name_escape", ["search", "--name", "../../escape"], "--name must be a plain name"),
    ("name_slash", ["search", "--name", "a/b"], "--name must be a plain name"),
    ("name_long", ["search", "--name", "{long}"], "--name must be a plain name"),
    ("name_blank", ["search", "--name", "   "], "argument --name: must not be empty"),
    ("resume_escape", ["search", "--resume", "../x"], "--resume must be a plain name"),
    ("config_folder", ["search", "--config", "{tmp}/a_dir"], "a_dir is a folder; expected a search spec YAML"),
    ("config_missing", ["search", "--config", "{tmp}/missing.yaml"], "missing.yaml does not exist"),
    ("config_device", ["search", "--config", "/dev/null"], "--config /dev/null is not a regular file"),
    ("config_long", ["search", "--config", "{tmp}/{long}.yaml"], "argument --config: the path is too long"),
    ("results_dir_file", ["search", "--results-dir", "{tmp}/a_file"], "--results-dir {tmp}/a_file is a file"),
    ("results_dir_under_file", ["search", "--results-dir", "{tmp}/a_file/r"], "cannot be created"),
    ("results_dir_read_only", ["search", "--results-dir", "{read_only}/r"], "is not writable"),
    ("results_dir_long", ["search", "--results-dir", "{tmp}/{long}"], "argument --results-dir: the path is too long"),
    ("storage_long", ["search", "--storage", "{tmp}/{long}"], "the path is too long for the file system"),
    ("data_dir_file", ["search", "--data-dir", "{tmp}/a_file"], "--data-dir {tmp}/a_file is a file"),
    ("confirm_data_dir_file", ["confirm", "--data-dir", "{tmp}/a_file"], "--data-dir {tmp}/a_file is not a folder"),
    ("storage_s3_unreachable", ["search", "--storage", "s3://bucket/prefix"], "--storage s3://bucket/prefix: its"),
    ("storage_unknown_scheme", ["search", "--storage", "ftp://host/x"], "unknown scheme 'ftp'"),
    ("storage_file", ["search", "--storage", "{tmp}/a_file"], "--storage {tmp}/a_file is a file"),
    ("storage_no_bucket", ["search", "--storage", "s3:///x"], "no bucket"),
    ("address_closed", ["search", "--address", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),
    ("address_malformed", ["search", "--address", "nowhere"], "expected HOST:PORT"),
    ("address_long", ["search", "--address", "{long}"], "expected HOST:PORT"),
    ("train_recipe_folder", ["train", "--recipe", "{tmp}/a_dir"], "--recipe {tmp}/a_dir is a folder"),
    ("train_recipe_device", ["train", "--recipe", "/dev/null"], "--recipe /dev/null is not a regular file"),
    ("train_recipe_missing", ["train", "--recipe", "{tmp}/nope.yaml"], "--recipe {tmp}/nope.yaml does not exist"),
]
RESUME = [
    ("resume_no_state", ["search", "--resume", "gone"], "--resume gone: no Tune state"),
    *[(f"resume_with_{flag.strip('-').replace('-', '_')}", ["search", "--resume", "x", flag, *value],
       f"--resume x continues that search with the spec it was started with; drop {flag}")
      for flag, value in [("--trials", ["3"]), ("--dataset", ["breastmnist"]), ("--config", ["{tmp}/a_file"]),
                          ("--name", ["y"]), ("--seed", ["1"]), ("--metric", ["val_macro_f1"])]],
]
# --image-size 4 and 300 get the same words (models/sizes.py judges both).
IMAGE_SIZE_RANGE = ("--image-size must be an integer in 8..256 (pixels per side; classifiers take up to 256, "
                    "generators up to 128)")
SIZES = [  # image sizes against the models (the message names the largest generator size: torch)
    ("image_size_flag", ["search", "--image-size", "300"], f"{IMAGE_SIZE_RANGE}, got 300"),
    ("image_size_tiny", ["search", "--image-size", "4"], f"{IMAGE_SIZE_RANGE}, got 4"),
    ("image_size_zero", ["search", "--image-size", "0"], f"{IMAGE_SIZE_RANGE}, got 0"),
    ("image_size_family", ["search", "--image-size", "200"],
     "image_size 200 does not suit generator 'dcgan': it takes 8..128 px (depth follows the size"),
    ("size_flag", ["search", "--dataset", "breastmnist", "--size", "100"], "size must be one of [28, 64, 128, 224]"),
    ("size_too_big_for_gans", ["search", "--dataset", "breastmnist", "--size", "224"],
     "breastmnist's own size 224 does not suit generator 'dcgan'"),
    ("class_fraction", ["search", "--class-fraction", "7=1.5"], "1.5"),
]
CASES = NUMBERS + EMPTY + NAMES_AND_PATHS + RESUME + SIZES
IN_PROCESS = {case[0] for case in SIZES} - {"image_size_flag"}  # one of them as a process shows the whole path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_inputs(tmp_path_factory.mktemp("bad_flags"), {})


@pytest.mark.parametrize(("args", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_flag_fails_with_one_line(inputs: Path, args: list[str], expected: str, request,
                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    case = request.node.callspec.id
    if case == "gpus_absent" and local_gpus() >= 2:
        pytest.skip("this machine has 2 GPUs")
    read_only = str(inputs / "read_only")
    if case == "results_dir_read_only" and os.geteuid() == 0:
        read_only = "/proc/self"  # root writes through chmod 555; /proc is read-only even for root
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:{port}"} if case == "storage_s3_unreachable" else {}
    args = [a.replace("{read_only}", read_only) for a in args]
    bad_input_case(inputs, case, args, expected.replace("{read_only}", read_only), in_process=case in IN_PROCESS,
                   monkeypatch=monkeypatch, capsys=capsys, env_extra=env)


def test_flag_errors_import_nothing_heavy(tmp_path: Path) -> None:
    """The fast path stays fast: bad flags, paths and stores are answered before torch, Ray or MLflow."""
    code = ("import sys; from ganmix.search.cli import main; "
            "rcs = [main(['search', '--trials', '0']), main(['search', '--seed', '-1']), "
            "main(['ui', '--results-dir', 'nowhere']), main(['search', '--time-budget', '0'])]; "
            "print(rcs, sorted(m for m in ('torch', 'ray', 'mlflow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[2, 2, 2, 2] []", done.stdout + done.stderr


@pytest.mark.parametrize("args", [["--class-fraction", "eleven=0.5"],
                                  ["--dataset", "breastmnist", "--data-dir", "no_data", "--class-fraction", "eleven=0.5"]],
                         ids=["digits", "medmnist_file_missing"])
def test_an_unknown_class_is_answered_by_name_before_torch(tmp_path: Path, args: list[str]) -> None:
    """A data set known by name (the embedded digits, a MedMNIST flag) has its class_fraction judged by its
    class names before any file is read (a missing one is never downloaded for it), before torch, Ray or
    MLflow, and nothing is created."""
    code = ("import sys; from ganmix.search.cli import main; "
            f"rc = main(['search', *{args!r}, '--results-dir', 'r']); "
            "print(rc, sorted(m for m in ('torch', 'ray', 'mlflow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "2 []", done.stdout + done.stderr
    assert done.stderr.strip().count("\n") == 0 and "unknown class 'eleven'" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_data_set_names_are_matched_in_any_capitals(tmp_path: Path) -> None:
    """`--dataset DIGITS` is the digits search (one experiment, which `ganmix best --dataset digits` finds)."""
    done = subprocess.run([sys.executable, "-m", "ganmix.search.cli", "search", "--dataset", " DIGITS",
                           "--dry-run"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\ndataset: digits\n" in done.stdout
    from ganmix.search.recipe import Recipe

    assert Recipe(dataset="BreastMNIST").dataset == "breastmnist"
    assert Recipe(dataset="folder:/Data/X").dataset == "folder:/Data/X"  # paths keep their case
    assert Recipe(dataset=" Folder:/Data/X").dataset == "folder:/Data/X"
