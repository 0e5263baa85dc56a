"""cluster.yaml and cluster.onprem.yaml checked offline: Ray's own schema and defaults, the
security and pinning rules, and the node commands the two files share (cluster/node.sh).

No AWS call and no network: `prepare_config` + `validate_config` are the steps `ray up` runs
before it talks to AWS. tests/test_cluster_launcher.py runs the on-premise file for real.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO / "cluster.yaml"
ONPREM_YAML = REPO / "cluster.onprem.yaml"
NODE_SCRIPT = REPO / "cluster" / "node.sh"
NODE_COMMAND = re.compile(r"bash ~/ganmix-cluster/node\.sh ([a-z-]+)")
# The keys whose commands both files share (the node_env line differs: it holds the parameters).
SHARED_KEYS = ("setup_commands", "head_setup_commands", "worker_setup_commands",
               "head_start_ray_commands", "worker_start_ray_commands")
CLUSTER_DOC = REPO / "README.md"  # its cluster section

ANY_ADDRESS = {"0.0.0.0", "::", "[::]"}
SECRET_PATTERNS = [
    r"aws_access_key_id",
    r"aws_secret_access_key",
    r"AWS_SECRET",
    r"AWS_SESSION_TOKEN",
    r"AKIA[0-9A-Z]{16}",  # the shape of an AWS access key id
    r"password\s*[=:]",
    r"MLFLOW_TRACKING_(USERNAME|PASSWORD)\s*=",
    r"BEGIN [A-Z ]*PRIVATE KEY",
]


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    loaded = yaml.safe_load(CLUSTER_YAML.read_text())
    assert isinstance(loaded, dict), f"{CLUSTER_YAML} must hold a mapping, got {type(loaded).__name__}"
    return loaded


@pytest.fixture(scope="module")
def prepared(raw: dict[str, Any]) -> dict[str, Any]:
    """The config as `ray up` sees it: AWS defaults merged in, setup commands merged per node kind."""
    return prepare_config(copy.deepcopy(raw))


def _node_script_actions() -> dict[str, list[str]]:
    """cluster/node.sh's commands per action (`setup`, `start-head`, ...), continuation lines joined."""
    text = NODE_SCRIPT.read_text().replace("\\\n", " ")
    bodies = dict(re.findall(r"^([a-z_]+)\(\) \{\n(.*?)^\}", text, flags=re.MULTILINE | re.DOTALL))
    actions = dict(re.findall(r"^  ([a-z-]+)\) ([a-z_]+) ;;", text, flags=re.MULTILINE))
    return {action: bodies[function].splitlines() for action, function in actions.items()}


def _commands(config: dict[str, Any], key: str) -> list[str]:
    """The commands under `key`, each `node.sh ACTION` call replaced by that action's lines."""
    actions = _node_script_actions()
    commands = []
    for command in map(str, config.get(key, [])):
        call = NODE_COMMAND.fullmatch(command)
        commands += actions[call.group(1)] if call else [command]
    return commands


def _the_command(commands: list[str], needle: str) -> list[str]:
    """The one command containing `needle`, split into shell words."""
    found = [command for command in commands if needle in command]
    assert len(found) == 1, f"expected exactly one command containing {needle!r}, found {found!r}"
    return shlex.split(found[0])


def _option(argv: list[str], name: str) -> str:
    """Value of `--name value` or `--name=value` in argv."""
    for i, word in enumerate(argv):
        if word == name and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    raise AssertionError(f"option {name} not found in {' '.join(argv)!r}")


def _node_env(raw: dict[str, Any]) -> dict[str, str]:
    """KEY=VALUE pairs of the node_env parameter (written to ~/ganmix.env on every node)."""
    words = shlex.split(raw["metadata"]["ganmix_parameters"]["node_env"])
    pairs = dict(word.split("=", 1) for word in words if re.fullmatch(r"[A-Z_]+=\S+", word))
    assert pairs, f"node_env defines no KEY=VALUE pairs: {words!r}"
    return pairs


def test_config_passes_rays_own_schema_and_checks(prepared: dict[str, Any]) -> None:
    validate_config(prepared)  # raises jsonschema.ValidationError or ValueError when invalid
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_trials_never_land_on_the_head_and_gpu_workers_scale_from_zero(prepared: dict[str, Any]) -> None:
    node_types = prepared["available_node_types"]
    head = node_types[prepared["head_node_type"]]
    assert head["resources"].get("CPU") == 0
    assert "GPU" not in head["resources"]
    workers = {name: spec for name, spec in node_types.items() if name != prepared["head_node_type"]}
    gpu_workers = {name: spec for name, spec in workers.items() if spec["resources"].get("GPU", 0) >= 1}
    assert gpu_workers, f"no worker node type declares a GPU: {workers!r}"
    for name, spec in gpu_workers.items():
        assert spec["min_workers"] == 0, f"{name} must autoscale from 0"
        assert spec["max_workers"] >= 1, f"{name} must be allowed to scale up"
        assert spec["node_config"]["InstanceType"].startswith("g5.")


def test_file_holds_no_credentials() -> None:
    text = CLUSTER_YAML.read_text()
    for pattern in SECRET_PATTERNS:
        match = re.search(pattern, text, flags=re.IGNORECASE)
        assert match is None, f"cluster.yaml contains credential-like text {match.group(0)!r}"


def test_no_port_is_opened_beyond_rays_default_ssh(prepared: dict[str, Any]) -> None:
    extra_rules = prepared["provider"].get("security_group", {}).get("IpPermissions", [])
    assert extra_rules == [], f"extra inbound rules would expose the cluster: {extra_rules!r}"


def test_mlflow_serves_artifacts_on_the_private_address_with_the_host_check_on(prepared: dict[str, Any]) -> None:
    argv = _the_command(_commands(prepared, "head_start_ray_commands"), "mlflow\" server")
    assert "--serve-artifacts" in argv
    assert _option(argv, "--artifacts-destination").startswith(("s3://", "$"))
    assert _option(argv, "--backend-store-uri").startswith(("sqlite:////", "sqlite:///$HOME/"))
    host = _option(argv, "--host")
    assert host not in ANY_ADDRESS
    allowed = _option(argv, "--allowed-hosts")
    assert "*" not in allowed and not ANY_ADDRESS & set(allowed.split(","))
    if host.startswith("$"):  # set on the head from the address it was reached at (node_ip)
        head_setup = " ".join(_commands(prepared, "head_setup_commands"))
        assert f"{host.lstrip('$')}=$ip" in head_setup and "ip=$(node_ip)" in head_setup


def test_dashboard_binds_to_localhost_and_token_auth_is_on(prepared: dict[str, Any]) -> None:
    head_argv = _the_command(_commands(prepared, "head_start_ray_commands"), "ray\" start --head")
    assert _option(head_argv, "--dashboard-host") == "127.0.0.1"
    worker_argv = _the_command(_commands(prepared, "worker_start_ray_commands"), "ray\" start")
    for argv in (head_argv, worker_argv):
        assert "RAY_AUTH_MODE=token" in argv
        assert _option(argv, "--node-ip-address") == "$(node_ip)"
    # The token generated locally by `ray get-auth-token --generate` is copied to every node.
    assert prepared["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"
    every_command = " ".join(
        command
        for key in ("head_setup_commands", "worker_setup_commands", "head_start_ray_commands")
        for command in _commands(prepared, key)
    )
    assert "0.0.0.0" not in every_command


def test_every_node_installs_pinned_ganmix_and_the_local_ray(raw: dict[str, Any], prepared: dict[str, Any]) -> None:
    env = _node_env(raw)
    ref = env["GANMIX_REF"]
    assert re.fullmatch(r"v?\d+\.\d+\.\d+|[0-9a-f]{40}", ref), f"GANMIX_REF {ref!r} must be a release tag or full SHA"
    assert env["GANMIX_REPO"].startswith("https://")
    # `ray up` refuses a cluster whose Ray differs from the launching machine's.
    assert env["RAY_VERSION"] == ray.__version__
    assert "boto3" in env["GANMIX_EXTRA_PACKAGES"]
    for key in ("head_setup_commands", "worker_setup_commands"):
        install = _the_command(_commands(prepared, key), "pip install")
        assert "ganmix @ git+${GANMIX_REPO}@${GANMIX_REF}" in install
        assert "ray[default]==${RAY_VERSION}" in install
        assert "$GANMIX_EXTRA_PACKAGES" in install


@pytest.mark.parametrize(
    "needle",
    [
        "ray get-auth-token --generate",
        "ray up cluster.yaml",
        "ray up cluster.onprem.yaml",
        "ray exec cluster.onprem.yaml",
        "ray down cluster.onprem.yaml",
        "ray job submit",
        "ray dashboard cluster.yaml",
        "ssh -L 5000",
        "--resume",
        "ray down cluster.yaml",
        "--app-name basic-auth",
        "MLFLOW_TRACKING_USERNAME",
    ],
)
def test_docs_name_every_command_a_user_needs(needle: str) -> None:
    assert needle in CLUSTER_DOC.read_text(), f"README.md's cluster section does not mention {needle!r}"


@pytest.fixture(scope="module")
def onprem_raw() -> dict[str, Any]:
    loaded = yaml.safe_load(ONPREM_YAML.read_text())
    assert isinstance(loaded, dict), f"{ONPREM_YAML} must hold a mapping, got {type(loaded).__name__}"
    return loaded


def test_onprem_config_passes_rays_own_schema_and_checks(onprem_raw: dict[str, Any]) -> None:
    prepared = prepare_config(copy.deepcopy(onprem_raw))
    validate_config(prepared)
    assert prepared["provider"]["type"] == "local"
    assert prepared["provider"]["head_ip"] not in prepared["provider"]["worker_ips"]
    assert onprem_raw["auth"]["ssh_private_key"] and onprem_raw["auth"]["ssh_user"]


def test_both_files_run_the_same_node_commands(raw: dict[str, Any], onprem_raw: dict[str, Any]) -> None:
    """One source of truth: apart from their node_env line, the two files run the same commands."""
    aws_env, onprem_env = raw["metadata"]["ganmix_parameters"]["node_env"], onprem_raw["metadata"]["ganmix_parameters"]["node_env"]
    for key in SHARED_KEYS:
        aws = [command for command in raw.get(key, []) if command != aws_env]
        onprem = [command for command in onprem_raw.get(key, []) if command != onprem_env]
        assert aws == onprem, f"{key} differs between cluster.yaml and cluster.onprem.yaml: {aws!r} vs {onprem!r}"
        assert all(NODE_COMMAND.fullmatch(command) for command in aws), f"{key}: not all commands call node.sh"
    assert raw["setup_commands"][0] == aws_env and onprem_raw["setup_commands"][0] == onprem_env
    for config in (raw, onprem_raw):
        assert config["file_mounts"]["~/ganmix-cluster"] == "./cluster"
        assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    # Both node_env lines define the same parameters, so node.sh runs the same way on both.
    assert set(_node_env_keys(aws_env)) == set(_node_env_keys(onprem_env))
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", NODE_SCRIPT.read_text())) - {"HOME", "PATH", "SSH_CONNECTION", "RAY_HEAD_IP",
                                                                        "MLFLOW_HOST", "GANMIX_TRACKING_URI"}  # set by head-env
    assert used <= set(_node_env_keys(aws_env)), f"node.sh reads parameters no node_env sets: {used - set(_node_env_keys(aws_env))}"


def test_every_node_action_the_files_call_exists() -> None:
    actions = _node_script_actions()
    for path in (CLUSTER_YAML, ONPREM_YAML):
        for action in NODE_COMMAND.findall(path.read_text()):
            assert action in actions, f"{path.name} calls node.sh {action}, which node.sh does not define"


def _node_env_keys(command: str) -> list[str]:
    return [word.split("=", 1)[0] for word in shlex.split(command) if re.fullmatch(r"[A-Z_0-9]+=.*", word)]
