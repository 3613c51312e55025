#!/usr/bin/env bash
# Stop the cluster that clusters/local/start.sh started: only the process
# groups it recorded whose leader is still the node it started (its start time
# and command line), first politely (SIGTERM lets `ray start --block` stop its
# node), then for good (SIGKILL) after a grace period.
set -uo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
state="${HGEN_CLUSTER_DIR:-$repo/.cache/hgen-cluster}"
grace_s="${HGEN_STOP_GRACE_S:-15}"
if [ ! -s "$state/pgids" ]; then
  echo "stop.sh: no cluster recorded in $state/pgids; nothing to stop"
  exit 0
fi
# A recorded group is ours only while its leader is the `ray start --block` that start.sh launched: the
# same start time (a pid reused after a reboot or a crash has another) and a `ray start` command line.
is_ours() {  # pgid, recorded start time (empty in records made before start times were kept)
  local stat="/proc/$1/stat"
  [ -r "$stat" ] || return 1
  if [ -n "$2" ] && [ "$(sed 's/.*) //' "$stat" | awk '{print $20}')" != "$2" ]; then return 1; fi
  tr '\0' ' ' < "/proc/$1/cmdline" | grep -q "ray start --block"
}
groups=()
while read -r group started; do
  [ -n "$group" ] || continue
  if is_ours "$group" "${started:-}"; then
    groups+=("$group")
  else
    echo "stop.sh: process $group is no longer this cluster's node (gone, or its number now another program's); left alone" >&2
  fi
done < "$state/pgids"
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
