#!/usr/bin/env bash
# The node commands of both cluster files (cluster.yaml on AWS, cluster.onprem.yaml on your own
# servers), kept here once: `ray up` copies this folder to ~/ganmix-cluster on every node and
# the files' setup/start commands call `bash ~/ganmix-cluster/node.sh ACTION`.
# Every parameter comes from ~/ganmix.env, which each file's `node_env` writes first.
#
#   setup        every node: a Python 3.11 venv with the pinned Ray and ganmix (or the one
#                already at GANMIX_VENV), ~/.bashrc activating it, the data sets fetched once
#   head-env     head: its own address (MLflow, Ray) appended to ~/ganmix.env
#   start-head   head: Ray head (token auth) and the MLflow tracking server
#   start-worker worker: Ray joined to $RAY_HEAD_IP
#   stop         this cluster's Ray processes and MLflow server only, never a host-wide `ray stop`
set -euo pipefail
. ~/ganmix.env

# The address this node was reached at over SSH (the IP in the cluster file, or the private IP
# on AWS), so Ray and MLflow bind to the cluster's network; Ray's own guess when not over SSH.
node_ip() {
  if [ -n "${SSH_CONNECTION:-}" ]; then set -- $SSH_CONNECTION; echo "$3"
  else "$GANMIX_VENV/bin/python" -c 'import ray.util; print(ray.util.get_node_ip_address())'; fi
}

# This node's Ray session folder. Per node, so that `stop` never touches another node's processes
# (two nodes may share a host) nor any other Ray on the host.
temp_dir() { echo "$RAY_TEMP_DIR/$(node_ip)"; }

setup() {
  if [ ! -x "$GANMIX_VENV/bin/python" ]; then
    if command -v python3.11 >/dev/null; then python3.11 -m venv "$GANMIX_VENV"
    else  # e.g. the AWS image (Python 3.10): uv brings a Python 3.11
      test -x ~/.local/bin/uv || curl -LsSf https://astral.sh/uv/install.sh | sh
      ~/.local/bin/uv venv --python 3.11 --seed "$GANMIX_VENV"
    fi
  fi
  if [ -n "$GANMIX_REF" ]; then
    "$GANMIX_VENV/bin/python" -m pip install --quiet \
      "ray[default]==${RAY_VERSION}" "ganmix @ git+${GANMIX_REPO}@${GANMIX_REF}" $GANMIX_EXTRA_PACKAGES
  fi
  # An empty GANMIX_REF uses the venv as it is; it must hold ganmix and the launcher's Ray.
  "$GANMIX_VENV/bin/python" -c "import importlib.util as u, ray, sys
sys.exit(0 if u.find_spec('ganmix.search') and ray.__version__ == '$RAY_VERSION' else
         'ganmix-node: $GANMIX_VENV needs ganmix and ray==$RAY_VERSION (ray ' + ray.__version__ + ')')"
  # Ray runs every command in a login shell that sources ~/.bashrc: activate the venv there,
  # put the cluster-scoped `ray stop` first on PATH and switch token authentication on.
  grep -qs ganmix-cluster ~/.bashrc || printf '%s\n' \
    '. ~/ganmix.env && . "$GANMIX_VENV/bin/activate" && export PATH="$HOME/ganmix-cluster/bin:$PATH"' \
    'export RAY_AUTH_MODE=token' >> ~/.bashrc
  if [ -n "$GANMIX_DATASETS" ]; then  # once per node here, so concurrent trials never race to download
    "$GANMIX_VENV/bin/python" -c 'import os; from ganmix.datasets import load_dataset
[load_dataset(f, data_dir=os.environ["GANMIX_DATA_DIR"]) for f in os.environ["GANMIX_DATASETS"].split(",")]'
  fi
}

head_env() {
  local ip; ip=$(node_ip)
  printf 'export %s\n' "MLFLOW_HOST=$ip" "GANMIX_TRACKING_URI=http://$ip:$MLFLOW_PORT" \
    "RAY_ADDRESS=$ip:$RAY_PORT" >> ~/ganmix.env
}

start_head() {
  unset RAY_ADDRESS
  ulimit -n 65536 2>/dev/null || true
  RAY_AUTH_MODE=token RAY_enable_autoscaler_v2="$RAY_AUTOSCALER_V2" "$GANMIX_VENV/bin/ray" start --head --node-ip-address="$(node_ip)" --port="$RAY_PORT" --temp-dir="$(temp_dir)" --autoscaling-config="$HOME/ray_bootstrap_config.yaml" --dashboard-host=127.0.0.1 --disable-usage-stats $RAY_HEAD_ARGS $RAY_START_ARGS
  # MLflow on the cluster's network only: workers reach it there, people through an SSH tunnel.
  # The Host allow-list stays on and names the addresses clients use. --serve-artifacts proxies
  # artifact uploads, so only the head writes the store. The GenAI job runner is off: ganmix never
  # uses it, and its processes would outlive the server.
  mkdir -p ~/mlflow
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false nohup "$GANMIX_VENV/bin/mlflow" server --backend-store-uri "sqlite:///$HOME/mlflow/mlflow.db" --artifacts-destination "$MLFLOW_ARTIFACTS" --serve-artifacts --host "$MLFLOW_HOST" --port "$MLFLOW_PORT" --allowed-hosts "$MLFLOW_HOST:$MLFLOW_PORT,localhost:$MLFLOW_PORT,127.0.0.1:$MLFLOW_PORT" --workers 2 >> ~/mlflow/server.log 2>&1 < /dev/null &
  echo $! > ~/mlflow/server.pid
  # `ray up` returns once MLflow answers, so a search can start right away.
  for _ in $(seq 120); do
    "$GANMIX_VENV/bin/python" -c "import urllib.request as r; r.urlopen('$GANMIX_TRACKING_URI/health', timeout=2)" 2>/dev/null && return
    kill -0 "$(cat ~/mlflow/server.pid)" 2>/dev/null || break
    sleep 1
  done
  echo "ganmix-node: MLflow did not start, see ~/mlflow/server.log:" >&2; tail -20 ~/mlflow/server.log >&2; return 1
}

start_worker() {
  unset RAY_ADDRESS
  ulimit -n 65536 2>/dev/null || true
  RAY_AUTH_MODE=token "$GANMIX_VENV/bin/ray" start --address="$RAY_HEAD_IP:$RAY_PORT" --node-ip-address="$(node_ip)" --temp-dir="$(temp_dir)" $RAY_START_ARGS
}

# SIGTERM, a grace period, then SIGKILL, as `ray stop` does, but only for the given processes.
end_all() {
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 20); do
    local alive=0 pid; for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 1 ] || return 0; sleep 0.5
  done
  kill -KILL "$@" 2>/dev/null || true
}

descendants() { local pid; for pid in $(pgrep -P "$1" || true); do echo "$pid"; descendants "$pid"; done; }

stop() {
  # MLflow first (its PID file; the check keeps a reused PID safe), with its worker processes.
  local pid; pid=$(cat ~/mlflow/server.pid 2>/dev/null || true)
  if [ -n "$pid" ] && grep -qs mlflow "/proc/$pid/cmdline"; then end_all $(descendants "$pid") "$pid"; fi
  rm -f ~/mlflow/server.pid
  # This node's Ray processes are those naming its own temp dir, plus their children (workers
  # and agents rename themselves). Ray's order: raylets, then the rest, then the GCS.
  local raylets=() gcs=() rest=() dir; dir=$(temp_dir)
  for pid in $(pgrep -f -- "--[a-z_-]*=$dir/" || true); do
    case "$(cat /proc/$pid/comm 2>/dev/null)" in
      raylet) raylets+=($(descendants "$pid") "$pid") ;;
      gcs_server) gcs+=("$pid") ;;
      *) rest+=($(descendants "$pid") "$pid") ;;
    esac
  done
  end_all "${raylets[@]}"; end_all "${rest[@]}"; end_all "${gcs[@]}"
}

case "${1:-}" in
  setup) setup ;;
  head-env) head_env ;;
  start-head) start_head ;;
  start-worker) start_worker ;;
  stop) stop ;;
  *) echo "usage: node.sh setup|head-env|start-head|start-worker|stop" >&2; exit 2 ;;
esac
