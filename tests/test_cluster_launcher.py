"""`ray up cluster.onprem.yaml` for real, over SSH on loopback.

The test builds an sshd of its own (config, host key, port, a HOME per "node") on 127.0.0.2 (the
head) and 127.0.0.3 (a worker), derives a cluster file from cluster.onprem.yaml by changing only
its parameters, and runs the real launcher: `ray up -y`, `ray exec` of a small `ganmix search`
against the MLflow server the head's start commands launched, reads the trials back from that
server, then `ray down -y` and the README's worker stop, and checks that no Ray or MLflow process
of the test is left. The nodes run the checkout's .venv (an empty GANMIX_REF installs nothing).
127.0.0.1 is not a node address because Ray replaces it with the host's IP; the node commands stop
only their own node's processes, so other Ray users of this host are never touched.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from _ports import free_port, free_ports
from cluster_harness import search_runs, tune_summary, write_search_spec

pytestmark = pytest.mark.launcher

REPO = Path(__file__).resolve().parents[1]
ONPREM_YAML = REPO / "cluster.onprem.yaml"
VENV_BIN = Path(sys.executable).parent
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
SSHD, RSYNC = shutil.which("sshd", path="/usr/sbin:/usr/bin:/sbin"), shutil.which("rsync")
TRIALS = 3
LOG_TAIL = 4000


def _diagnostics(root: Path) -> str:
    """Tails of the head's autoscaler log and MLflow log, for a failure message."""
    logs = sorted(root.glob("ray/*/session_*/logs/monitor.*")) + sorted(root.glob("*-home/mlflow/server.log"))
    return "".join(f"\n--- {path}\n{path.read_text(errors='replace')[-LOG_TAIL:]}" for path in logs)


def _run(args: list[str], *, env: dict[str, str], timeout_s: float, root: Path) -> str:
    """Run a launcher command; its output goes to root/launcher.log and is returned; a failure fails the test."""
    try:
        done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout_s,
                              start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{shlex.join(args)}` ran past {timeout_s:.0f} s:\n{str(exc.stdout)[-LOG_TAIL:]}"
                    f"{_diagnostics(root)}")
    output = done.stdout + done.stderr
    with (root / "launcher.log").open("a") as out:
        out.write(f"$ {shlex.join(args)}\n{output}\n")
    assert done.returncode == 0, (f"`{shlex.join(args)}` exited {done.returncode}:\n{output[-LOG_TAIL:]}"
                                  f"{_diagnostics(root)}")
    return output


def _processes_under(root: Path) -> list[str]:
    """'PID cmdline' of live processes whose command line names `root` (this test's Ray and MLflow)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(root) in cmdline and "sshd" not in cmdline:
            found.append(f"{entry.name} {cmdline[:160]}")
    return found


def _end_processes_under(root: Path) -> None:
    """Safety net after a failed test: SIGKILL what is left of this test's own processes (and their
    children: Ray workers rename themselves, so their command lines no longer name `root`)."""
    for line in _processes_under(root):
        pid = line.split()[0]
        children = subprocess.run(["pgrep", "-P", pid], capture_output=True, text=True).stdout.split()
        for victim in [*children, pid]:
            try:
                os.kill(int(victim), signal.SIGKILL)
            except ProcessLookupError:
                pass


class Sshd:
    """A throwaway sshd on HEAD_IP and WORKER_IP: its own host key, port, authorized key and HOMEs."""

    def __init__(self, root: Path) -> None:
        self.root, self.user = root, getpass.getuser()
        self.port = free_port(HEAD_IP, WORKER_IP)
        self.key = root / "id_ed25519"
        self.homes = {HEAD_IP: root / "head-home", WORKER_IP: root / "worker-home"}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sshd:
        shim = self.write_ssh_shim()
        for home in self.homes.values():
            home.mkdir()
            # Ray's login shells source ~/.bashrc (node.sh setup appends the venv after this line).
            (home / ".bashrc").write_text(f'export PATH="{shim}:$PATH"\n')
        for key in (self.key, self.root / "host_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (self.root / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        config = self.root / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", f"ListenAddress {HEAD_IP}", f"ListenAddress {WORKER_IP}",
            f"HostKey {self.root / 'host_key'}", f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}", f"AllowUsers {self.user}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            "PermitRootLogin prohibit-password", "AllowTcpForwarding yes", "LogLevel ERROR",
            # Each node gets its own HOME, so ~/ganmix.env, ~/.bashrc and ~/mlflow stay per node
            # and nothing lands in the real home directory.
            f"SetEnv HOME={self.homes[HEAD_IP]}",
            f"Match LocalAddress {WORKER_IP}", f"  SetEnv HOME={self.homes[WORKER_IP]}", "",
        ]))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
        subprocess.run([SSHD, "-t", "-f", str(config)], check=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=(self.root / "sshd.log").open("w"))
        deadline = time.monotonic() + 15
        while subprocess.run([*self.ssh_command(HEAD_IP), "true"], capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                pytest.fail(f"sshd did not accept a login: {(self.root / 'sshd.log').read_text()[-LOG_TAIL:]}")
            time.sleep(0.3)
        return self

    def ssh_command(self, host: str) -> list[str]:
        return ["ssh", "-i", str(self.key), "-p", str(self.port), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "LogLevel=ERROR", f"{self.user}@{host}"]

    def write_ssh_shim(self) -> Path:
        """A folder with an `ssh` that adds this sshd's port: Ray's ssh has no port option and drops
        `ssh_proxy_command` from the head's copy of the config, so the launcher and the head (which
        starts the worker) both find this one on PATH. Real nodes listen on port 22."""
        shim = self.root / "bin"
        shim.mkdir(exist_ok=True)
        # ssh expands `-i ~/ray_bootstrap_key.pem` with the passwd home, not the node's $HOME.
        (shim / "ssh").write_text("\n".join([
            "#!/bin/bash", "args=() prev=",
            'for a in "$@"; do',
            '  case "$prev$a" in "-i~/"*) a="$HOME/${a#\\~/}" ;; esac; args+=("$a"); prev=$a',
            "done",
            f'exec {shutil.which("ssh")} -p {self.port} "${{args[@]}}"', ""]))
        (shim / "ssh").chmod(0o755)
        return shim

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A short temp folder: Ray's session sockets must fit in 107 characters."""
    root = Path(tempfile.mkdtemp(prefix="gmx-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _node_env(values: dict[str, str]) -> str:
    """The node_env command of the cluster file, with `values` as its KEY=VALUE words."""
    words = (f'{k}="{v}"' if " " in v else f"{k}={v}" for k, v in values.items())
    return "printf 'export %s\\n' " + " ".join(shlex.quote(word) for word in words) + " > ~/ganmix.env"


def _parse_node_env(command: str) -> dict[str, str]:
    words = shlex.split(command)
    assert words[:2] == ["printf", "export %s\\n"] and words[-2] == ">", f"unexpected node_env: {command!r}"
    return dict(word.split("=", 1) for word in words[2:-2])


def launcher_config(sshd: Sshd, root: Path, *, ray_port: int, mlflow_port: int, dashboard_port: int) -> dict:
    """cluster.onprem.yaml with only its parameters changed for loopback (and the test's ssh port)."""
    config = yaml.safe_load(ONPREM_YAML.read_text())
    env_command = config["setup_commands"][0]
    env = _parse_node_env(env_command)
    env.update(
        GANMIX_REF="",  # install nothing: the nodes run this checkout's .venv
        GANMIX_VENV=str(VENV_BIN.parent), GANMIX_DATASETS="", GANMIX_DATA_DIR=str(root / "data"),
        RAY_PORT=str(ray_port), MLFLOW_PORT=str(mlflow_port), RAY_TEMP_DIR=str(root / "ray"),
        RAY_HEAD_ARGS="--num-cpus=0",  # trials can only run on the worker node
        RAY_START_ARGS=f"--dashboard-port={dashboard_port} --dashboard-agent-listen-port=0 --object-store-memory=100000000",
        MLFLOW_ARTIFACTS=str(root / "mlflow-artifacts"), GANMIX_STORAGE=str(root / "tune"),
    )
    node_env = _node_env(env)
    config["setup_commands"] = [node_env if command == env_command else command for command in config["setup_commands"]]
    config["metadata"]["ganmix_parameters"]["node_env"] = node_env
    config["cluster_name"] = f"ganmix-test-{root.name}"
    config["provider"].update(head_ip=HEAD_IP, worker_ips=[WORKER_IP])
    config["auth"] = {"ssh_user": sshd.user, "ssh_private_key": str(sshd.key)}
    return config


@pytest.mark.skipif(SSHD is None or RSYNC is None,
                    reason="needs openssh-server and rsync (`apt-get install -y openssh-server rsync`; .ci/run does it)")
def test_ray_up_runs_a_search_on_the_onprem_cluster_and_ray_down_leaves_nothing(short_root: Path) -> None:
    root = short_root
    sshd = Sshd(root)
    launcher_home = root / "launcher-home"
    launcher_home.mkdir()
    # The launcher gets its own HOME (auth token), Ray temp folder (cluster state) and TMPDIR (config cache).
    (root / "tmp").mkdir()
    env = {**os.environ, "HOME": str(launcher_home), "RAY_TMPDIR": str(root / "launcher-ray"),
           "TMPDIR": str(root / "tmp"), "PATH": f"{root / 'bin'}:{VENV_BIN}:{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0"}
    ports = free_ports(3, HEAD_IP, WORKER_IP)
    config = launcher_config(sshd, root, ray_port=ports[0], mlflow_port=ports[1], dashboard_port=ports[2])
    cluster_file = root / "cluster.yaml"
    cluster_file.write_text(yaml.safe_dump(config, sort_keys=False))
    ray = str(VENV_BIN / "ray")
    up = False
    try:
        sshd.start()
        _run([ray, "get-auth-token", "--generate"], env=env, timeout_s=60, root=root)
        started = time.monotonic()
        up = True
        _run([ray, "up", "-y", "--no-config-cache", str(cluster_file)], env=env, timeout_s=240, root=root)
        up_s = time.monotonic() - started
        head_env = (sshd.homes[HEAD_IP] / "ganmix.env").read_text()
        assert f"GANMIX_TRACKING_URI=http://{HEAD_IP}:{ports[1]}" in head_env
        mlflow_pid = int((sshd.homes[HEAD_IP] / "mlflow" / "server.pid").read_text())

        # `ray up` returns once the head runs; the worker joins a little later. A search submitted before it
        # has joined is refused (no node can hold a trial), so wait for its CPUs, as a user waits on `ray status`.
        probe = root / "probe.py"
        probe.write_text("import ray\nray.init(address='auto', logging_level=40)\n"
                         "print('CPUS', sum(n['Resources'].get('CPU', 0) for n in ray.nodes() if n['Alive']))\n")
        deadline = time.monotonic() + 120
        while "CPUS 0" in (probe_out := _run([ray, "exec", str(cluster_file), f"{VENV_BIN / 'python'} {probe}"],
                                             env=env, timeout_s=60, root=root)) and time.monotonic() < deadline:
            time.sleep(2)
        assert "CPUS" in probe_out and "CPUS 0" not in probe_out, probe_out[-2000:]

        spec = write_search_spec(root / "spec.yaml", trials=TRIALS, max_concurrent=1)
        search = (f'cd ~ && ganmix search --config {spec} --name launcher --address auto '
                  f'--tracking-uri "$GANMIX_TRACKING_URI" --storage "$GANMIX_STORAGE" --results-dir ~/results '
                  f'--no-sample-metrics')
        output = _run([ray, "exec", str(cluster_file), search], env=env, timeout_s=240, root=root)
        assert tune_summary(output) == (TRIALS, 0)
        searched_s = time.monotonic() - started - up_s

        # The trials, read back from the MLflow server that the head's start commands launched.
        parent, children = search_runs(f"http://{HEAD_IP}:{ports[1]}", "launcher")
        trials = [run for run in children if run.data.tags.get("ganmix.kind") != "search"]
        assert len(trials) == TRIALS
        assert all(run.info.status == "FINISHED" for run in trials)
        assert all("val/auc" in run.data.metrics for run in trials)

        _run([ray, "down", "-y", str(cluster_file)], env=env, timeout_s=120, root=root)
        up = False

        def head_left() -> list[str]:
            return _processes_under(root / "ray" / HEAD_IP)

        deadline = time.monotonic() + 30
        while (head_left() or Path(f"/proc/{mlflow_pid}").exists()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not Path(f"/proc/{mlflow_pid}").exists(), "the MLflow server outlived `ray down`"
        assert head_left() == [], "the head's Ray processes outlived `ray down`"
        down_s = time.monotonic() - started - up_s - searched_s
        # Ray's local provider leaves a worker's Ray running after `ray down` (it exits once the
        # head is gone); the README's command stops it at once.
        subprocess.run([*sshd.ssh_command(WORKER_IP), "bash ~/ganmix-cluster/node.sh stop"], check=True, timeout=60)
        assert _processes_under(root) == [], "Ray or MLflow processes of the test are left"
        print(f"\nlauncher: ray up {up_s:.0f} s, search {searched_s:.0f} s, ray down {down_s:.0f} s, "
              f"total {time.monotonic() - started:.0f} s")
    finally:
        if up:
            subprocess.run([ray, "down", "-y", str(cluster_file)], env=env, cwd=REPO, capture_output=True, timeout=120)
        _end_processes_under(root)
        sshd.stop()
        name = config["cluster_name"]
        for leftover in Path("/tmp/ray").glob(f"cluster-{name}.*"):  # the head's copy of the state
            leftover.unlink(missing_ok=True)
        # Ray's ssh ControlPath folder for this cluster (command_runner.SSHCommandRunner's naming).
        user_hash, name_hash = (hashlib.sha256(text.encode()).hexdigest()[:10] for text in (sshd.user, name))
        shutil.rmtree(f"/tmp/ray_ssh_{user_hash}/{name_hash}", ignore_errors=True)
