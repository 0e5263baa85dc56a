"""Every bad input fails fast with one clear line: exit code, one line naming the field or file, no traceback,
nothing created, no hang.

Cases judged before the spec is built run as one CLI process each: they fail before torch, Ray or MLflow
are imported (well under a second idle). Cases that need the Recipe's validation or the data set import torch
(~3 s a process), so beside a few that run as a process, they call the CLI's `main` in this process, where
torch is imported once. bench/bench_errors.py prints the seconds-to-error per case."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from ganmix.search.preflight import local_gpus

# Generous for a loaded 2-core CI machine; the speed itself is measured by bench/bench_errors.py.
TIME_LIMIT_S = 60
# --image-size 4 and 300 get the same words (models/sizes.py judges both).
IMAGE_SIZE_RANGE = ("--image-size must be an integer in 8..256 (pixels per side; classifiers take up to 256, "
                    "generators up to 128)")

SPECS = {
    "unknown_family": {"space": {"generator": ["dcgan", "stylegan"]}},
    "negative_ratio": {"space": {"synthetic_ratio": {"type": "float", "low": -1.0, "high": 1.0}}},
    "latent_zero": {"generator_space": {"dcgan": {"latent_dim": {"type": "int", "low": 0, "high": 64}}}},
    "latent_float": {"generator_space": {"cvae": {"latent_dim": [8.5, 16]}}},
    "filter_above_one": {"space": {"filter_threshold": {"type": "float", "low": 0.0, "high": 1.5}}},
    "unknown_allocation": {"space": {"allocation": ["proportional", "random"]}},
    "lr_zero": {"space": {"classifier_lr": {"type": "float", "low": 0.0, "high": 0.1}}},
    "n_critic_zero": {"generator_space": {"wgan_gp": {"n_critic": {"type": "int", "low": 0, "high": 5}}}},
    "unknown_gs_family": {"generator_space": {"stylegan": {"width": [32]}}},
    "unknown_gs_option": {"generator_space": {"dcgan": {"n_critic": [1, 2]}}},
    "gs_low_above_high": {"generator_space": {"cvae": {"kl_weight": {"type": "float", "low": 2.0, "high": 1.0}}}},
    "image_size_200": {"image_size": 200},
    "name_escape": {"name": "../../escape"},
    "format_9": {"format": "ganmix.search/9"},
    "unknown_key": {"budget": 3},
    "unknown_space_field": {"space": {"dropout": [0.1]}},
    "fixed_bad": {"fixed": {"classifier_epochs": 0}},
    "space_and_fixed": {"space": {"generator_epochs": [16]}, "fixed": {"generator_epochs": 16}},
    "constraints": {"constraints": {"near_copy_fraction": {"max": 0.01}}},
    "unknown_constraint": {"constraints": {"fidelity": {"max": 1}}},
}

# (id, argv, what the one line must contain). {tmp}: the case folder; {port}: a closed local port.
CASES = [
    # flags: judged before the spec is built (no torch, Ray or MLflow)
    ("trials_zero", ["search", "--trials", "0"], "--trials must be an integer >= 1, got 0"),
    ("trials_text", ["search", "--trials", "x"], "argument --trials: invalid int value: 'x'"),
    ("max_concurrent_zero", ["search", "--max-concurrent", "0"], "--max-concurrent must be an integer >= 1"),
    ("cpus_zero", ["search", "--cpus-per-trial", "0"], "--cpus-per-trial must be a number > 0"),
    ("cpus_too_many", ["search", "--cpus-per-trial", "100"], "cpus_per_trial = 100 is more than"),
    ("gpus_negative", ["search", "--gpus-per-trial", "-1"], "--gpus-per-trial must be a number >= 0"),
    ("gpus_absent", ["search", "--gpus-per-trial", "2"], "gpus_per_trial = 2"),
    ("metric_unknown", ["search", "--metric", "accuracy"], "invalid choice: 'accuracy'"),
    ("flag_unknown", ["search", "--budget", "3"], "unrecognized arguments: --budget"),
    ("name_escape", ["search", "--name", "../../escape"], "--name must be a plain name"),
    ("name_slash", ["search", "--name", "a/b"], "--name must be a plain name"),
    ("resume_escape", ["search", "--resume", "../x"], "--resume must be a plain name"),
    ("config_folder", ["search", "--config", "{tmp}/a_dir"], "a_dir is a folder; expected a search spec YAML"),
    ("config_missing", ["search", "--config", "{tmp}/missing.yaml"], "missing.yaml does not exist"),
    ("results_dir_file", ["search", "--results-dir", "{tmp}/a_file"], "--results-dir {tmp}/a_file is a file"),
    ("results_dir_under_file", ["search", "--results-dir", "{tmp}/a_file/r"], "cannot be created"),
    ("results_dir_read_only", ["search", "--results-dir", "{read_only}/r"], "is not writable"),
    ("data_dir_file", ["search", "--data-dir", "{tmp}/a_file"], "--data-dir {tmp}/a_file is a file"),
    ("tracking_unknown_scheme", ["search", "--tracking-uri", "foo://x"], "unknown scheme 'foo'"),
    ("tracking_plain_path", ["search", "--tracking-uri", "{tmp}/store"], "is a plain path"),
    ("tracking_sqlite_folder", ["search", "--tracking-uri", "sqlite:///{tmp}/a_dir"], "is a folder"),
    ("tracking_unreachable", ["search", "--tracking-uri", "http://127.0.0.1:{port}"], "is unreachable"),
    ("tracking_env", ["search"], "MLFLOW_TRACKING_URI 'bogus://x': unknown scheme"),
    ("storage_s3_unreachable", ["search", "--storage", "s3://bucket/prefix"], "--storage s3://bucket/prefix: its"),
    ("storage_unknown_scheme", ["search", "--storage", "ftp://host/x"], "unknown scheme 'ftp'"),
    ("storage_file", ["search", "--storage", "{tmp}/a_file"], "--storage {tmp}/a_file is a file"),
    ("address_closed", ["search", "--address", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),
    ("address_malformed", ["search", "--address", "nowhere"], "expected HOST:PORT"),
    ("resume_no_state", ["search", "--resume", "gone"], "--resume gone: no Tune state"),
    ("ui_port", ["ui", "--port", "99999"], "--port must be in 1..65535 (a TCP port), got 99999"),
    ("best_no_store", ["best"], "no completed trials"),
    ("train_recipe_folder", ["train", "--recipe", "{tmp}/a_dir"], "--recipe {tmp}/a_dir is a folder"),
    # recipe-level flags and the spec: judged by the Recipe's own validation (imports torch)
    # (from here on, cases outside AS_PROCESS run in-process; see the module docstring)
    ("image_size_flag", ["search", "--image-size", "300"], f"{IMAGE_SIZE_RANGE}, got 300"),
    ("image_size_tiny", ["search", "--image-size", "4"], f"{IMAGE_SIZE_RANGE}, got 4"),
    ("image_size_family", ["search", "--image-size", "200"],
     "image_size 200 does not suit generator 'dcgan': it takes 8..128 px (depth follows the size"),
    ("size_flag", ["search", "--dataset", "breastmnist", "--size", "100"], "size must be one of [28, 64, 128, 224]"),
    ("size_too_big_for_gans", ["search", "--dataset", "breastmnist", "--size", "224"],
     "breastmnist's own size 224 does not suit generator 'dcgan'"),
    ("train_per_class_zero", ["search", "--train-per-class", "0"], "--train-per-class: train_per_class must be"),
    ("seed_negative", ["search", "--seed", "-1"], "--seed: seed must be an integer"),
    ("class_fraction", ["search", "--class-fraction", "7=1.5"], "1.5"),
    ("train_recipe_format", ["train", "--recipe", "{tmp}/recipe9.yaml"], "format 'ganmix.recipe/9' is not supported"),
    ("constraints_without_samples", ["search", "--config", "{tmp}/constraints.yaml", "--no-sample-metrics"],
     "need sample metrics"),
    *[(f"spec_{key}", ["search", "--config", f"{{tmp}}/{key}.yaml"], expected) for key, expected in [
        ("unknown_family", "space.generator: choice 'stylegan' is not a valid value"),
        ("negative_ratio", "space.synthetic_ratio: low -1.0 is not a valid value"),
        ("latent_zero", "generator_space.dcgan.latent_dim: low 0 is not a valid value"),
        ("latent_float", "generator_space.cvae.latent_dim: choice 8.5 is not a valid value"),
        ("filter_above_one", "space.filter_threshold: high 1.5 is not a valid value"),
        ("unknown_allocation", "space.allocation: choice 'random'"),
        ("lr_zero", "space.classifier_lr: low 0.0"),
        ("n_critic_zero", "generator_space.wgan_gp.n_critic: low 0 is not a valid value"),
        ("unknown_gs_family", "generator_space.stylegan: unknown generator family"),
        ("unknown_gs_option", "generator_space.dcgan.n_critic"),
        ("gs_low_above_high", "generator_space.cvae.kl_weight: low 2.0 is above high 1.0"),
        ("image_size_200", "image_size 200 does not suit generator 'dcgan': it takes 8..128 px"),
        ("name_escape", "name must be a plain name"),
        ("format_9", "format 'ganmix.search/9' is not supported"),
        ("unknown_key", "unknown key(s) ['budget']"),
        ("unknown_space_field", "space: unknown recipe field(s) ['dropout']"),
        ("fixed_bad", "classifier_epochs must be an integer"),
        ("space_and_fixed", "both searched (space) and fixed"),
        ("unknown_constraint", "constraints.fidelity: unknown metric"),
    ]],
    # data sets: read before Ray or MLflow start
    ("npz_is_text", ["search", "--dataset", "breastmnist", "--data-dir", "{tmp}/data_text"],
     "not a readable .npz (not a zip archive"),
    ("val_split_empty", ["search", "--dataset", "breastmnist", "--data-dir", "{tmp}/data_empty_val"],
     "the val split is empty"),
    ("dataset_unknown", ["search", "--dataset", "nosuchmnist"], "nosuchmnist"),
    ("folder_missing", ["search", "--dataset", "folder:{tmp}/no_such_folder"], "no_such_folder"),
]


FIRST_HEAVY = next(i for i, case in enumerate(CASES) if case[0] == "image_size_flag")
# Torch-bound cases that still run as a process, to show the whole path: flag, spec, data file, data split.
AS_PROCESS = {"image_size_flag", "spec_unknown_family", "npz_is_text", "val_split_empty"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _npz(path: Path, *, val: int) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 8), ("val", val), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    path.parent.mkdir(parents=True)
    np.savez(path, **arrays)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "a_file").write_text("not a folder\n")
    (root / "a_dir").mkdir()
    for key, spec in SPECS.items():
        (root / f"{key}.yaml").write_text(yaml.safe_dump(spec))
    (root / "recipe9.yaml").write_text("format: ganmix.recipe/9\ndataset: digits\n")
    (root / "data_text").mkdir()
    (root / "data_text" / "breastmnist.npz").write_text("hello, I am text\n")
    _npz(root / "data_empty_val" / "breastmnist.npz", val=0)
    read_only = root / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    return root


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(("args", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_fails_with_one_line(inputs: Path, args: list[str], expected: str, request,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    case = request.node.callspec.id
    in_process = [c[0] for c in CASES].index(case) >= FIRST_HEAVY and case not in AS_PROCESS
    if case == "gpus_absent" and local_gpus() >= 2:
        pytest.skip("this machine has 2 GPUs")
    if case == "results_dir_read_only" and os.geteuid() == 0:
        read_only = "/proc/self"  # root writes through chmod 555; /proc is read-only even for root
    else:
        read_only = str(inputs / "read_only")
    fill = {"{tmp}": str(inputs), "{port}": str(_closed_port()), "{read_only}": read_only}
    argv = [_fill(a, fill) for a in args]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANMIX_RESULTS", "RAY_ADDRESS")}
    env["GANMIX_DATA_DIR"] = str(inputs / "no_data")  # never the user's data folder
    if case == "tracking_env":
        env["MLFLOW_TRACKING_URI"] = "bogus://x"
    if case == "storage_s3_unreachable":  # a closed local endpoint: the same answer with or without internet
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{_closed_port()}"
    work = inputs / f"work-{case}"  # the default --results-dir (./ganmix-results) would land here
    work.mkdir()
    before = _tree(inputs)
    started = time.monotonic()
    if in_process:
        returncode, output = _main_in_process(argv, work, env, monkeypatch, capsys)
    else:
        done = subprocess.run([sys.executable, "-m", "ganmix.search.cli", *argv], cwd=work, env=env,
                              capture_output=True, text=True, timeout=TIME_LIMIT_S * 3)
        returncode, output = done.returncode, (done.stderr + done.stdout).strip()
    seconds = time.monotonic() - started
    lines = [line for line in output.splitlines() if line.strip()]
    assert returncode != 0, output
    assert "Traceback" not in output, output
    assert len(lines) == 1, output
    assert _fill(expected, fill) in lines[0], output
    assert _tree(inputs) == before, "the failed command left files behind"
    assert seconds < TIME_LIMIT_S, f"{seconds:.1f} s"


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


def test_flag_errors_import_nothing_heavy(tmp_path: Path) -> None:
    """The fast path stays fast: a bad flag is answered before torch, Ray or MLflow are imported."""
    code = ("import sys; from ganmix.search.cli import main; rc = main(['search', '--trials', '0']); "
            "print(rc, sorted(m for m in ('torch', 'ray', 'mlflow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "2 []", done.stdout + done.stderr


def _fill(text: str, fill: dict[str, str]) -> str:
    for key, value in fill.items():
        text = text.replace(key, value)
    return text


def test_a_class_with_one_train_image_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ganmix.search.preflight import load_search_data
    from ganmix.search.spec import SearchSpec

    _npz(tmp_path / "data" / "breastmnist.npz", val=4)
    spec = SearchSpec(dataset="breastmnist", class_fraction={"1": 0.25})  # 4 images of class 1 -> 1
    dataset = load_search_data(spec, tmp_path / "data")
    assert dataset.train.class_counts(2) == [4, 1]
    warning = capsys.readouterr().err
    assert "warning" in warning and "fewer than 2 train images" in warning and "(1)" in warning


@pytest.fixture(scope="module")
def local_ray():
    """One private local Ray for the in-process tests below (run_search reuses an initialised Ray)."""
    import ray

    ray.init(address="local", include_dashboard=False, configure_logging=False, num_cpus=2)
    yield ray
    ray.shutdown()


def test_a_trial_no_node_can_hold_is_refused_after_connecting(local_ray) -> None:
    """With --address the resources are judged on the cluster joined (here a 2-CPU, GPU-less one)."""
    from ganmix.search.preflight import PreflightError, check_cluster_resources
    from ganmix.search.spec import SearchSpec

    check_cluster_resources(SearchSpec(cpus_per_trial=2), "here")
    with pytest.raises(PreflightError, match=r"cpus_per_trial = 3 and gpus_per_trial = 0: no node .* 2 CPUs/0 GPUs"):
        check_cluster_resources(SearchSpec(cpus_per_trial=3), "here")
    with pytest.raises(PreflightError, match=r"gpus_per_trial = 0.5: no node of the Ray cluster at here"):
        check_cluster_resources(SearchSpec(gpus_per_trial=0.5), "here")


def test_a_search_whose_set_up_fails_marks_its_parent_run_failed(tmp_path: Path, local_ray) -> None:
    """A crash between opening the parent run and Tune's start must not leave the parent RUNNING: here the
    Tune state of a search to resume is missing (run_search called directly, past the CLI's pre-flight)."""
    from ganmix.search.runner import RunOptions, run_search
    from ganmix.search.spec import SearchSpec
    from ganmix.tracking import runs, store

    uri = store.default_tracking_uri(tmp_path)
    store.check_reachable(uri)
    experiment_id = store.ensure_experiment(store.client(uri), "digits", uri)
    parent = runs.start_run(uri, experiment_id, name="lost", tags={runs.KIND: "search", runs.SEARCH_NAME: "lost"})
    parent.finish("KILLED", error="interrupted")
    spec = SearchSpec.from_mapping({"name": "lost", "trials": 2, "fixed": {"classifier_epochs": 1}})
    options = RunOptions(results_dir=tmp_path, resume=True, sample_metrics=False, quiet=True)
    with pytest.raises(FileNotFoundError, match=r"Failed to open local file '.*/lost/tuner\.pkl'"):
        run_search(spec, options)
    run = store.client(uri).get_run(parent.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[runs.ERROR].startswith("search set-up failed")
