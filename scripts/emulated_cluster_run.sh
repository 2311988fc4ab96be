#!/bin/sh
# Runs one basin_allreduce_probe rank in each host of the emulated cluster (scripts/
# emulated_cluster.sh up) and collects rank 0's JSON lines: the measurement half of the
# simulator check, shared by scripts/emulated_cluster_report.sh and tests/cluster/cluster_test.sh.
#
# Usage: scripts/emulated_cluster_run.sh [--ranks-per-host K] PROBE OUT.jsonl [probe flags...]
# Ranks meet through a FileStore in a fresh directory (the namespaces share the file system, as
# the hosts of a cluster share NFS), each binding its namespace's address. With --ranks-per-host
# K (default 1) each host runs K ranks, numbered as torchrun numbers them (RANK = host * K +
# LOCAL_RANK, LOCAL_WORLD_SIZE = K), which is what the hierarchical allreduce groups by. Exit
# status: 0 when every rank succeeded; otherwise 1 with every failing rank's stderr printed.
set -eu
usage="usage: emulated_cluster_run.sh [--ranks-per-host K] PROBE OUT.jsonl [probe flags...]"
per_host=1
if [ "${1:-}" = --ranks-per-host ]; then
  per_host=${2:?$usage}
  shift 2
  case "$per_host" in
    ''|*[!0-9]*|0) echo "emulated_cluster_run: --ranks-per-host '$per_host': expected an integer of 1 or more" >&2; exit 2 ;;
  esac
fi
probe=${1:?$usage}
out=${2:?$usage}
shift 2
[ -x "$probe" ] || { echo "emulated_cluster_run: PROBE '$probe' is not an executable" >&2; exit 2; }
state=/run/basin-emulated-cluster
[ -f "$state" ] || { echo "emulated_cluster_run: the emulated cluster is not up (run scripts/emulated_cluster.sh up)" >&2; exit 2; }
hosts=$(sed -n 's/^hosts=//p' "$state")

work=$(mktemp -d /tmp/basin-emulated-run.XXXXXX)
world=$((hosts * per_host))
pids=""
i=0
while [ "$i" -lt "$world" ]; do
  host=$((i / per_host))
  ip netns exec "basin-h$host" env RANK=$i WORLD_SIZE=$world LOCAL_RANK=$((i % per_host)) LOCAL_WORLD_SIZE=$per_host \
    BASIN_RENDEZVOUS_DIR="$work/store" BASIN_BIND_ADDR="10.77.0.$((host + 1))" BASIN_TIMEOUT_S=60 \
    "$probe" "$@" > "$work/rank$i.out" 2> "$work/rank$i.err" &
  pids="$pids $!"
  i=$((i + 1))
done
status=0
i=0
for pid in $pids; do
  if ! wait "$pid"; then
    echo "emulated_cluster_run: rank $i failed:" >&2
    cat "$work/rank$i.err" >&2
    status=1
  fi
  i=$((i + 1))
done
cp "$work/rank0.out" "$out"
rm -rf "$work"
exit $status
