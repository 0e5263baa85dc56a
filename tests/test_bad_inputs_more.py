"""The bad inputs of issue 25, section 4: each is one clear line (what was wrong, what to do), a non-zero exit,
nothing left behind, and no traceback, hang or library noise. Tracking stores and clusters that cannot be
reached are judged by a bounded connect, before any work (see test_bad_inputs.py for the harness's rules)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from _bad_input_harness import bad_input_case, make_inputs

DEEP = "/".join(["d" * 200] * 3)  # three components of 200 bytes: every one legal, the store's path too long for SQLite
SPECS = {
    "list_key": None,  # written as text below: YAML that safe_dump cannot produce
    "tiny_cpus": {"dataset": "digits", "cpus_per_trial": 1e-9},
    "fid_real_only": {"dataset": "digits", "metric": "fid", "space": {"generator": ["none"]}},
}
RECIPES = {  # `ganmix train` recipes whose data set is wrong: judged before a store is made
    "recipe_unknown_data": {"dataset": "nosuchmnist"},
    "recipe_missing_folder": {"dataset": "folder:{tmp}/no_such_folder"},
    "recipe_relative_folder": {"dataset": "folder:relative/images"},
    "recipe_unknown_class": {"dataset": "digits", "class_fraction": {"eleven": 0.5}},
}
# (id, argv, what the one line must contain, environment: a value, or None to unset the variable).
# {http}: a web server on loopback that is not MLflow; {port}: a closed port.
TRACEBACKS = [
    ("tracking_ipv6", ["search", "--tracking-uri", "http://[::1"], "--tracking-uri 'http://[::1' is not a valid URI", {}),
    *[(f"tracking_ipv6_env_{cmd}", [cmd, *extra], "MLFLOW_TRACKING_URI 'http://[::1' is not a valid URI",
       {"MLFLOW_TRACKING_URI": "http://[::1"})
      for cmd, extra in [("search", []), ("best", []), ("confirm", []), ("train", ["--recipe", "{tmp}/a_file"])]],
    ("storage_ipv6", ["search", "--storage", "s3://[::1"], "--storage 's3://[::1' is not a valid URI", {}),
    ("address_nothing_listening", ["search", "--address", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1", {}),
    ("address_ray_client_closed", ["search", "--address", "ray://127.0.0.1:{port}"], "no Ray cluster answers", {}),
    ("spec_list_key", ["search", "--config", "{tmp}/list_key.yaml"], "a key must be a name, got a list", {}),
    ("cpus_tiny", ["search", "--cpus-per-trial", "1e-9"], "--cpus-per-trial 1e-09 is below Ray's smallest share", {}),
    ("gpus_tiny", ["search", "--gpus-per-trial", "1e-9"], "--gpus-per-trial 1e-09 is below Ray's smallest share", {}),
    ("spec_cpus_tiny", ["search", "--config", "{tmp}/tiny_cpus.yaml"], "cpus_per_trial 1e-09 is below Ray's", {}),
    ("tmpdir_long", ["search", "--trials", "1"], "TMPDIR '{tmp}/ttttt", {"TMPDIR": "{tmp}/" + "t" * 80}),
    ("tmpdir_very_long", ["search", "--trials", "1"], "bytes long; Ray's sockets under it", {"TMPDIR": "/{long}"}),
    ("ray_tmpdir_long", ["confirm", "--results-dir", "{tmp}/store_ok"], "RAY_TMPDIR '{tmp}/ttttt",
     {"RAY_TMPDIR": "{tmp}/" + "t" * 80}),
    ("tracking_not_mlflow", ["search", "--tracking-uri", "http://127.0.0.1:{http}"],
     "the server there is not an MLflow tracking server (GET /api/2.0/mlflow/experiments/search gave HTTP 404)", {}),
    ("tracking_not_mlflow_best", ["best", "--tracking-uri", "http://127.0.0.1:{http}/"],
     "is not an MLflow tracking server", {}),
]
HANGS = [
    ("address_auto_no_cluster", ["search", "--address", "auto"], "--address auto: no Ray cluster is running on this",
     {"RAY_TMPDIR": "{tmp}/raytmp"}),
    ("confirm_address_auto", ["confirm", "--results-dir", "{tmp}/store_ok", "--address", "auto"],
     "--address auto: no Ray cluster is running", {"RAY_TMPDIR": "{tmp}/raytmp"}),
    ("tracking_postgres_closed", ["search", "--tracking-uri", "postgresql://u:secret@127.0.0.1:{port}/db"],
     "the postgresql database server is unreachable", {}),
    ("tracking_mysql_closed", ["best", "--tracking-uri", "mysql+pymysql://u@127.0.0.1:{port}/db"],
     "the mysql database server is unreachable", {}),
    ("tracking_databricks", ["search", "--tracking-uri", "databricks"], "databricks: no Databricks credentials",
     {"DATABRICKS_CONFIG_FILE": "{tmp}/no_databrickscfg"}),
    ("tracking_databricks_env", ["best"], "MLFLOW_TRACKING_URI databricks: no Databricks credentials",
     {"MLFLOW_TRACKING_URI": "databricks", "DATABRICKS_CONFIG_FILE": "{tmp}/no_databrickscfg"}),
]
ACCEPTED = [
    ("tracking_in_memory", ["search", "--tracking-uri", "sqlite:///:memory:"], "is an in-memory store", {}),
    ("tracking_in_memory_env", ["train", "--recipe", "{tmp}/a_file"], "MLFLOW_TRACKING_URI sqlite:///:memory: is an",
     {"MLFLOW_TRACKING_URI": "sqlite:///:memory:"}),
    ("fid_without_sample_metrics", ["search", "--metric", "fid", "--no-sample-metrics"],
     "objective fid is a sample metric, and --no-sample-metrics turns those off", {}),
    ("fid_real_only_space", ["search", "--config", "{tmp}/fid_real_only.yaml"], "draws only real-only recipes", {}),
    ("class_fraction_twice", ["search", "--class-fraction", "0=0.5", "--class-fraction", "0=0.3"],
     "class '0' is given twice (0=0.5 and 0=0.3)", {}),
    ("class_fraction_comma", ["search", "--class-fraction", "0=0.5,1=0.5"], "one CLASS=F per flag", {}),
    ("confirm_top_alone", ["search", "--confirm-top", "5"], "--confirm-top 5 does nothing without --confirm", {}),
    ("quiet_and_verbose", ["search", "--quiet", "--verbose"], "argument --verbose: not allowed with argument --quiet",
     {}),
    ("data_dir_for_digits", ["search", "--data-dir", "{tmp}/nowhere"],
     "data set 'digits' reads nothing from a data folder", {}),
    ("data_dir_env_file", ["search"], "GANMIX_DATA_DIR {tmp}/a_file is a file", {"GANMIX_DATA_DIR": "{tmp}/a_file"}),
    ("data_dir_env_file_train", ["train", "--recipe", "{tmp}/recipe_digits.yaml"],
     "GANMIX_DATA_DIR {tmp}/a_file is a file", {"GANMIX_DATA_DIR": "{tmp}/a_file"}),
    ("results_dir_dangling_link", ["search", "--results-dir", "{tmp}/dangling"],
     "--results-dir {tmp}/dangling is a link to {tmp}/gone, which does not exist", {}),
    ("ray_address_env_closed", ["search"], "RAY_ADDRESS 127.0.0.1:{port}: no Ray cluster answers",
     {"RAY_ADDRESS": "127.0.0.1:{port}"}),
]
MISLEADING = [
    ("train_unknown_data_set", ["train", "--recipe", "{tmp}/recipe_unknown_data.yaml"], "nosuchmnist", {}),
    ("train_missing_folder", ["train", "--recipe", "{tmp}/recipe_missing_folder.yaml"], "no_such_folder", {}),
    ("train_relative_folder", ["train", "--recipe", "{tmp}/recipe_relative_folder.yaml"], "relative/images", {}),
    ("train_unknown_class", ["train", "--recipe", "{tmp}/recipe_unknown_class.yaml"], "eleven", {}),
    ("medmnist_missing_in_data_dir", ["search", "--dataset", "breastmnist", "--data-dir", "{tmp}/a_dir",
                                      "--trials", "1"], "MedMNIST file {tmp}/a_dir/breastmnist.npz is missing",
     {"https_proxy": "http://127.0.0.1:{port}", "HTTPS_PROXY": "http://127.0.0.1:{port}"}),
]
LEFTOVERS = [
    ("home_unset", ["search", "--trials", "1"], "HOME is not set", {"HOME": None}),
    ("home_missing", ["search", "--trials", "1"], "HOME {tmp}/no_home is not a folder", {"HOME": "{tmp}/no_home"}),
    ("home_missing_train", ["train", "--recipe", "{tmp}/recipe_digits.yaml"], "HOME {tmp}/no_home is not a folder",
     {"HOME": "{tmp}/no_home"}),
    ("results_path_too_long", ["search", "--trials", "1", "--results-dir", "{tmp}/" + DEEP],
     "SQLite opens paths of at most 512", {}),
]
CASES = TRACEBACKS + HANGS + ACCEPTED + MISLEADING + LEFTOVERS
# Judged after the spec is built or the recipe read (torch imported): in this process, where it already is.
IN_PROCESS = {"spec_cpus_tiny", "fid_real_only_space", "data_dir_for_digits", "train_unknown_class",
              "train_relative_folder", "train_missing_folder", "train_unknown_data_set"}


class _NotMlflow(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def web_server() -> Iterator[int]:
    """A web server on loopback that is not MLflow (every path: 404)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotMlflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_inputs(tmp_path_factory.mktemp("bad_more"), {k: v for k, v in SPECS.items() if v is not None},
                       texts={"list_key.yaml": b"[a, b]: 1\ntrials: 2\n"})
    for key, recipe in RECIPES.items():
        text = yaml.safe_dump(recipe).replace("{tmp}", str(root))
        (root / f"{key}.yaml").write_text(text)
    (root / "recipe_digits.yaml").write_text(yaml.safe_dump({"dataset": "digits"}))
    (root / "dangling").symlink_to(root / "gone")
    (root / "store_ok").mkdir()  # a results folder with a real (empty) MLflow store, for `confirm`
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{root / 'store_ok' / 'mlflow.db'}").search_experiments()
    return root


@pytest.mark.parametrize(("args", "expected", "env"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_fails_with_one_line(inputs: Path, web_server: int, args: list[str], expected: str,
                                       env: dict[str, str | None], request, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    case = request.node.callspec.id
    args = [a.replace("{http}", str(web_server)) for a in args]
    output = bad_input_case(inputs, case, args, expected, in_process=case in IN_PROCESS, monkeypatch=monkeypatch,
                            capsys=capsys, env_extra=env)
    assert "secret" not in output  # a database password is never printed


def test_a_cap_beyond_int64_runs_without_tune_logger_noise(tmp_path: Path) -> None:
    """--train-per-class 99999999999999999999 keeps every image: the search succeeds, and Tune's own
    TensorBoard/CSV/JSON trial loggers (which add nothing next to MLflow, and whose TensorboardX printed a
    traceback for the value) are off, so nothing but ganmix's lines reaches the console, MLflow's INFO lines of
    a first run that creates the store template included (a fresh user cache)."""
    import os
    import subprocess
    import sys

    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({
        "dataset": "digits", "trials": 1, "max_concurrent": 1, "cpus_per_trial": 1,
        "finalists": {"count": 0},  # the finalists stage is not what this tests: no extra runs
        "space": {"generator": ["none"]}, "fixed": {"classifier_epochs": 1, "classifier_min_steps": 0}}))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "GANMIX_RESULTS")}
    env["GANMIX_CACHE"] = str(tmp_path / "user-cache")  # no store template yet: this run migrates one
    done = subprocess.run([sys.executable, "-m", "ganmix.search.cli", "search", "--config", "spec.yaml",
                           "--train-per-class", "99999999999999999999", "--no-sample-metrics", "--results-dir", "res"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "search " in output and ": 1 trials, 0 failed" in output, output
    for noise in ("Traceback", "TensorboardX", "tensorboard", "WARNING", "Warning", "INFO"):
        assert noise not in output, output
    assert list((tmp_path / "user-cache" / "store-template").glob("mlflow-*.db"))
    experiment = next((tmp_path / "res" / "ray").iterdir())
    assert not list(experiment.rglob("events.out.tfevents*")) and not list(experiment.rglob("progress.csv"))
