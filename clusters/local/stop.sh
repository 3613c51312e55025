#!/usr/bin/env bash
# Stop the cluster that clusters/local/start.sh started: only the process
# groups it recorded, first politely (SIGTERM lets `ray start --block` stop its
# node), then for good (SIGKILL) after a grace period.
set -uo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
state="${HGEN_CLUSTER_DIR:-$repo/.cache/hgen-cluster}"
grace_s="${HGEN_STOP_GRACE_S:-15}"
if [ ! -s "$state/pgids" ]; then
  echo "stop.sh: no cluster recorded in $state/pgids; nothing to stop"
  exit 0
fi
mapfile -t groups < "$state/pgids"
for group in "${groups[@]}"; do kill -TERM -- "-$group" 2> /dev/null; done
for _ in $(seq 1 "$grace_s"); do
  alive=0
  for group in "${groups[@]}"; do kill -0 -- "-$group" 2> /dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 1
done
for group in "${groups[@]}"; do kill -KILL -- "-$group" 2> /dev/null; done
rm -f "$state/pgids"
# `ray start` records the newest head for later drivers; forget it if it is ours.
current=/tmp/ray/ray_current_cluster
if [ -s "$state/gcs_port" ] && [ -f "$current" ] && grep -q ":$(cat "$state/gcs_port")\$" "$current"; then
  rm -f "$current"
fi
echo "stopped ${#groups[@]} Ray node(s)"
