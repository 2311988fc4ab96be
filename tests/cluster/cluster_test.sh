#!/bin/sh
# ctest cluster_emulated_allreduce: builds the emulated cluster (4 namespaces, 1 Gbit/s links),
# times Gloo's ring and ring-chunked allreduces of 1, 4 and 16 MB in it, and fails when the
# simulator's prediction for any of them is off by more than 25% (basin_emulated_compare exits 1),
# or when the hierarchical allreduce over 2 ranks per host gives a wrong sum on any rank.
# Halving-doubling is not judged yet: with TCP slow start after idle off it still measures up to
# 23% slower than predicted at 16 MB from run to run (median of 7) for a reason not yet found, so
# a 25% bound on it would be close to a coin toss; reports/emulated-cluster-2026-11-23.md shows
# its rows. Skipped (77) where it
# cannot run: not root, or no network namespaces (a container without CAP_SYS_ADMIN).
# The measured times are only as good as the CPUs the ranks got: 4 ranks share this machine's
# cores, and a parallel build beside them once made ring-chunked 32% slower than predicted. So
# the script measures how much CPU time processes other than its own used while it measured
# (/proc/stat's busy and stolen time, less what its own children used). Above a quarter of the
# machine, a miss is reported as skipped ("machine busy") rather than as a wrong prediction; a
# pass is a pass at any load.
# The namespaces are always torn down, whatever fails.
# Usage: cluster_test.sh SOURCE_DIR PROBE COMPARE TOPOLOGY.json
set -eu
src=$1 probe=$2 compare=$3 topology=$4
cluster=$src/scripts/emulated_cluster.sh

if [ "$(id -u)" != 0 ]; then echo "skipped: needs root and ip netns (not root)"; exit 77; fi
if ! command -v ip >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1; then
  echo "skipped: needs root and ip netns (iproute2's ip and tc not found)"; exit 77
fi
probe_ns=basin-cluster-test-probe-$$
if ! ip netns add "$probe_ns" 2>/dev/null; then echo "skipped: needs root and ip netns (ip netns add failed)"; exit 77; fi
ip netns del "$probe_ns"

work=$(mktemp -d /tmp/basin-cluster-test.XXXXXX)
cleanup() { sh "$cluster" down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPU clock ticks: busy (user nice system irq softirq steal) and all, from /proc/stat's cpu line;
# this shell's waited-for children (cutime + cstime, /proc/PID/stat fields 16 and 17, the same
# USER_HZ ticks).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
own_ticks() { sed 's/^.*) //' "/proc/$$/stat" | awk '{ print $14 + $15 }'; }

sh "$cluster" up --hosts 4 --rate 1gbit
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
set -- $(machine_ticks) $(own_ticks)
busy0=$1 all0=$2 own0=$3
sh "$src/scripts/emulated_cluster_run.sh" "$probe" "$work/measured.jsonl" \
  --sizes 1048576,4194304,16777216 --algorithms ring,ring_chunked --warmup 1 --reps 7
set -- $(machine_ticks) $(own_ticks)
others=$(awk -v b="$(( $1 - busy0 ))" -v a="$(( $2 - all0 ))" -v o="$(( $3 - own0 ))" \
  'BEGIN { f = a > 0 ? (b - o) / a : 0; if (f < 0) f = 0; printf "%.2f", f }')
echo "share of the machine's CPU time used by other processes while measuring: $others"
"$probe" --cpu-rates > "$work/cpu.json"
cat "$work/cpu.json"
"$compare" --topology "$topology" --measured "$work/measured.jsonl" --cpu-rates "$work/cpu.json" \
  --check-min-bytes 1048576 --tolerance 0.25 --markdown "$work/table.md" > /dev/null && status=0 || status=$?
cat "$work/table.md"
echo "not judged: halving_doubling (up to 23% over the prediction at 16 MB from run to run, not yet explained; see the report)"
# The hierarchical allreduce across the namespaces: 2 ranks per host (8 ranks, servers by
# LOCAL_WORLD_SIZE), every rank checking its sums; its times are reports/emulated-hierarchical-*.md's.
for inter in halving_doubling ring_chunked; do
  if ! sh "$src/scripts/emulated_cluster_run.sh" --ranks-per-host 2 "$probe" "$work/hierarchical.jsonl" \
       --sizes 4096,1048580 --algorithms hierarchical --inter $inter --warmup 0 --reps 1; then
    echo "hierarchical($inter) on 4 hosts x 2 ranks failed"; exit 1
  fi
  grep -q '"median_s"' "$work/hierarchical.jsonl" || { echo "hierarchical($inter): no timing line"; cat "$work/hierarchical.jsonl"; exit 1; }
  echo "hierarchical($inter) on 4 hosts x 2 ranks: sums correct on every rank"
done
if [ "$status" = 1 ] && awk -v f="$others" 'BEGIN { exit !(f > 0.25) }'; then
  echo "skipped: machine busy (other processes used $others of the CPU time while measuring; a miss is not judged above 0.25)"
  exit 77
fi
exit $status
