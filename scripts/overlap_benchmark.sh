#!/bin/bash
# Data-parallel overhead on this machine: `basin train` with 1 rank against 2 ranks (Gloo over
# loopback), with overlap of allreduce and backward on and off, from the per-step log.jsonl.
# Prints a markdown table. Usage: scripts/overlap_benchmark.sh [BUILD_DIR] [STEPS]
set -eu
build=${1:-build}
steps=${2:-40}
basin=$build/basin
work=$(mktemp -d /tmp/basin-overlap.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$basin" data synth --out "$work/data" --classes 10 --train-per-class 100 --size 64 --quiet
common=(train --data "$work/data" --model resnet18 --image-size 96 --epochs 1 --no-validate
        --loader-threads 1 --stop-after "$steps" --quiet)
# Median over the steps after the first 5 (primitive creation, warm caches).
summarize() {
  /usr/bin/python3 - "$1" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"step_s"' in l][5:]
med = lambda k: statistics.median(r[k] for r in rows)
print(f"{med('images_per_s'):.1f} | {1000*med('step_s'):.0f} | {1000*med('compute_s'):.0f} | "
      f"{1000*med('comm_wait_s'):.1f} | {1000*med('data_wait_s'):.1f}")
PY
}
echo "| run | images/s | step ms | compute ms | exposed comm ms | data wait ms |"
echo "|---|---|---|---|---|---|"
"$basin" "${common[@]}" --batch 32 --threads 2 --out "$work/one" > /dev/null
echo "| 1 rank, batch 32, 2 threads | $(summarize "$work/one/log.jsonl") |"
for bucket in 0 25; do
  for overlap in "" --no-overlap; do
    out="$work/two-$bucket$overlap"
    "$basin" "${common[@]}" --batch 16 --threads 1 --nproc 2 --algorithm ring_chunked \
      --bucket-mb $bucket $overlap --out "$out" > /dev/null
    echo "| 2 ranks x 16, 1 thread each, bucket ${bucket} MB ${overlap:-(overlap)} | $(summarize "$out/log.jsonl") |"
  done
done
