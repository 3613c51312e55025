#!/usr/bin/env bash
# Start a real multi-node Ray cluster on this machine: a head plus N worker
# nodes, each its own `ray start --block` process with its own resources and
# ports. The process group of every node is recorded with its leader's start
# time, so that clusters/local/stop.sh stops only what this script started.
#
#   clusters/local/start.sh [N]        # N worker nodes, default 1
#
# Settings (environment):
#   HGEN_CLUSTER_DIR     state and logs          (default .cache/hgen-cluster)
#   HGEN_GCS_PORT        head GCS port           (default 16379)
#   HGEN_DASHBOARD_PORT  dashboard / jobs port   (default 18265)
#   HGEN_PORT_BASE       first per-node port     (default 21000; 100 ports per node)
#   HGEN_HEAD_CPUS       CPUs of the head        (default 1)
#   HGEN_WORKER_CPUS     CPUs of each worker     (default 1)
#   HGEN_WORKER_GPUS     GPUs of each worker     (default 0)
#   HGEN_DASHBOARD_HOST  dashboard bind address  (default 127.0.0.1; set 0.0.0.0 only behind a firewall)
#
# Token authentication stays on (RAY_AUTH_MODE=token). The token lives in
# ~/.ray/auth_token, created here if missing; `ray job submit` run by the same
# user reads it from there. This script never prints it.
set -euo pipefail

workers="${1:-1}"
if ! [[ "$workers" =~ ^[0-9]+$ ]] || [ "$workers" -lt 1 ] || [ "$workers" -gt 16 ]; then
  echo "start.sh: N must be a whole number of worker nodes from 1 to 16, got '$workers'" >&2
  exit 2
fi
repo="$(cd "$(dirname "$0")/../.." && pwd)"
ray_bin="${RAY_BIN:-$repo/.venv/bin/ray}"
python_bin="$(dirname "$ray_bin")/python"
state="${HGEN_CLUSTER_DIR:-$repo/.cache/hgen-cluster}"
gcs_port="${HGEN_GCS_PORT:-16379}"
dashboard_port="${HGEN_DASHBOARD_PORT:-18265}"
port_base="${HGEN_PORT_BASE:-21000}"
dashboard_host="${HGEN_DASHBOARD_HOST:-127.0.0.1}"

# Every number below reaches $(( )) or a port flag: a word there would be evaluated as a shell variable.
check_number() {  # name value low high
  if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
    echo "start.sh: $1 must be a whole number from $3 to $4, got '$2'" >&2
    exit 2
  fi
}
check_number HGEN_GCS_PORT "$gcs_port" 1024 65535
check_number HGEN_DASHBOARD_PORT "$dashboard_port" 1024 65535
check_number HGEN_PORT_BASE "$port_base" 1025 $((65535 - 100 * 17))  # the last node's 100 ports must fit
check_number HGEN_HEAD_CPUS "${HGEN_HEAD_CPUS:-1}" 0 1024
check_number HGEN_WORKER_CPUS "${HGEN_WORKER_CPUS:-1}" 0 1024
check_number HGEN_WORKER_GPUS "${HGEN_WORKER_GPUS:-0}" 0 64

if [ -s "$state/pgids" ]; then
  echo "start.sh: a cluster from this checkout is already running ($state/pgids); run clusters/local/stop.sh first" >&2
  exit 2
fi
mkdir -p "$state/logs"
state="$(cd "$state" && pwd)"  # each node starts in its own folder: every path below must be absolute
: > "$state/pgids"
echo "$gcs_port" > "$state/gcs_port"

# Job entrypoints (`hgen-ray search ...`) run in a shell that inherits this PATH.
export PATH="$(dirname "$ray_bin"):$PATH"
export RAY_AUTH_MODE=token
"$ray_bin" get-auth-token --generate > /dev/null
# Nodes, trials and jobs find the dataset here whatever their working directory.
export HGEN_DATA="${HGEN_DATA:-$repo/data/fashion-mnist}"

node_ports() {  # the per-node ports, 100 apart per node
  local base=$((port_base + 100 * $1))
  echo "--node-manager-port=$base --object-manager-port=$((base + 1)) \
--dashboard-agent-listen-port=$((base + 2)) --dashboard-agent-grpc-port=$((base + 3)) \
--runtime-env-agent-port=$((base + 4)) --metrics-export-port=$((base + 5)) \
--min-worker-port=$((base + 10)) --max-worker-port=$((base + 99))"
}

start_time() {  # a process's start, in clock ticks since boot: with its pid, who it is (stop.sh checks it)
  sed 's/.*) //' "/proc/$1/stat" | awk '{print $20}'
}

launch() {  # name, then `ray start` arguments; records the node's process group and its leader's start time
  local name="$1"; shift
  # Each node works in its own folder, as nodes on separate machines would: nothing may rely on a shared
  # working directory (Tune's state goes to search.storage_path, which every node reaches).
  mkdir -p "$state/nodes/$name"
  (cd "$state/nodes/$name" && exec setsid "$ray_bin" start --block "$@" > "$state/logs/$name.log" 2>&1) &
  echo "$! $(start_time "$!")" >> "$state/pgids"
}

wait_for_nodes() {  # count, timeout seconds
  "$python_bin" - "$gcs_port" "$1" "$2" <<'PY'
import sys, time, ray
port, want, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.time() + timeout
while True:
    try:
        ray.init(address=f"127.0.0.1:{port}", logging_level="ERROR", log_to_driver=False)
        alive = sum(1 for node in ray.nodes() if node["Alive"])
        ray.shutdown()
        if alive >= want:
            sys.exit(0)
    except Exception:
        pass
    if time.time() > deadline:
        print(f"start.sh: only some nodes came up within {timeout:.0f} s; see the logs", file=sys.stderr)
        sys.exit(1)
    time.sleep(1)
PY
}

# shellcheck disable=SC2046
launch head --head --node-ip-address=127.0.0.1 --port="$gcs_port" --num-cpus="${HGEN_HEAD_CPUS:-1}" --num-gpus=0 \
  --include-dashboard=true --dashboard-host="$dashboard_host" --dashboard-port="$dashboard_port" \
  --ray-client-server-port=$((port_base - 1)) $(node_ports 0)
wait_for_nodes 1 60 || { "$repo/clusters/local/stop.sh"; exit 1; }
for i in $(seq 1 "$workers"); do
  # shellcheck disable=SC2046
  launch "worker-$i" --address="127.0.0.1:$gcs_port" --node-ip-address=127.0.0.1 \
    --num-cpus="${HGEN_WORKER_CPUS:-1}" --num-gpus="${HGEN_WORKER_GPUS:-0}" $(node_ports "$i")
  # One node at a time: on a small machine, nodes starting together can miss the GCS's 30 s deadline.
  wait_for_nodes $((i + 1)) 90 || { "$repo/clusters/local/stop.sh"; exit 1; }
done
echo "Ray cluster up: head + $workers worker node(s)"
echo "  GCS:       127.0.0.1:$gcs_port        (RAY_ADDRESS for drivers on this machine)"
echo "  dashboard: http://$dashboard_host:$dashboard_port   (ray job submit --address http://127.0.0.1:$dashboard_port)"
echo "  stop with: clusters/local/stop.sh"
