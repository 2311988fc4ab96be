#!/usr/bin/env bash
# scripts/gpu_report.py on files shaped as one call of scripts/gpu_session.sh brings back: the
# ratios it prints are the ones worked out here from the same images/s, missing files are said,
# failed GPU tests are listed, a benchmark file cut off by its phase's cap keeps its complete
# entries, and JSON without an entries list fails without leaving a report behind.
set -euo pipefail
script="$(dirname "$0")/../../scripts/gpu_report.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }

mkdir "$work/ok"
cat >"$work/ok/summary.md" <<'MD'
# basin on gpu-host, 2026-12-07 10:00 UTC

- GPU: NVIDIA H100 80GB HBM3, 580.95.05, 81559 MiB

The device profile basin profile measured:

```json
{"format": "basin.device_profile/1", "measured": [
 {"model": "resnet50", "precision": "fp16", "batch_per_gpu": 256, "images_per_s": 4911, "source": "pytorch"},
 {"model": "resnet50", "precision": "bf16", "batch_per_gpu": 256, "images_per_s": 4123.4, "source": "basin", "backward_s": 0.0412}
]}
```
MD
# basin 4100 (plain BN) and 4400 (persistent) against eager 4000 and compiled 5500 images/s.
cat >"$work/ok/exec-gpu-bench.json" <<'JSON'
{"context": {}, "benchmarks": [
 {"name": "BM_BasinGpuResNet50Step/256/1/0/iterations:20/manual_time", "images_per_s": 4100.0, "device_GiB": 9.5, "planned_GiB": 11.2, "context_GiB": 0.5234},
 {"name": "BM_BasinGpuResNet50Step/256/1/1/iterations:20/manual_time", "images_per_s": 4400.0, "device_GiB": 9.6},
 {"name": "BM_PyTorchGpuResNet50Step/256/1/iterations:20/manual_time", "images_per_s": 4000.0, "device_GiB": 11.4, "peak_reserved_GiB": 11.0},
 {"name": "BM_BasinGpuResNet50Step/32/0/0/iterations:20/manual_time", "images_per_s": 1500.0, "device_GiB": 2.0},
 {"name": "BM_PyTorchGpuResNet50Step/32/0/iterations:20/manual_time", "images_per_s": 1200.0, "peak_reserved_GiB": 2.9},
 {"name": "BM_BasinGpuResNet50Step/256/2/1/iterations:20/manual_time", "error_occurred": true, "error_message": "gpu_batchnorm.cc:200: cudnnBatchNormalizationBackwardEx failed"}
]}
JSON
# The compile phase measures basin's plain mode again in its own process (4300): the compile
# ratio is taken against that line.
cat >"$work/ok/exec-gpu-compile.json" <<'JSON'
{"context": {}, "benchmarks": [
 {"name": "BM_BasinGpuResNet50Step/256/1/0/iterations:20/manual_time", "images_per_s": 4300.0, "device_GiB": 9.4},
 {"name": "BM_PyTorchCompiledGpuResNet50Step/256/1/iterations:20/manual_time", "images_per_s": 5500.0}
]}
JSON
printf '%s\n' "tests/gpu/net_gpu_test.cc:120: FAILED:" "test cases: 56 | 55 passed | 1 failed" >"$work/ok/test.log"
/usr/bin/python3 "$script" "$work/ok" "$work/ok/report.md" >/dev/null
report="$work/ok/report.md"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
bf16=$(grep '^| 256 | bf16 |' "$report") || fail "no bf16 batch-256 row"
# The faster of basin's two batch-norm modes against each peer.
[[ "$bf16" == *"| 4100 | 4400 | 9.5 | 11.2 | 4000 | 11.4 | 11.0 | $(ratio 4400 4000) | 5500 | $(ratio 4300 5500) |" ]] || fail "bf16 row: $bf16"
fp32=$(grep '^| 32 | fp32 |' "$report") || fail "no fp32 batch-32 row"
[[ "$fp32" == *"| $(ratio 1500 1200) |  |  |" ]] || fail "fp32 row: $fp32"
grep -q '^## Machine: basin on gpu-host' "$report" || fail "machine section"
grep -q 'Note: BM_BasinGpuResNet50Step/256/2/1/.* failed: gpu_batchnorm.cc:200: cudnnBatchNormalizationBackwardEx failed' "$report" || fail "a failed configuration is not noted"
grep -q "not in the planner's budget): 0.52 GiB" "$report" || fail "context memory line"
grep -q 'test cases: 56 | 55 passed | 1 failed' "$report" || fail "test summary line"
grep -q '^| resnet50 | bf16 | 256 | 4123 | 0.0412 |$' "$report" || fail "basin profile's row"
grep -q '^| resnet50 | fp16 | 256 | 4911' "$report" && fail "the base profile's PyTorch row shown as basin's"
grep -q -- '- tests/gpu/net_gpu_test.cc:120: FAILED:' "$report" || fail "failed test not listed"
[ "$(grep -c '(none came back)' "$report")" -eq 2 ] || fail "missing e2e.log and nccl.log not said"

# A bench phase stopped by its cap: the file ends after its last complete entry, which is kept.
mkdir "$work/cut"
cp "$work/ok/summary.md" "$work/cut/"
head -c "$(grep -b -o '"name": "BM_PyTorchGpuResNet50Step/256' "$work/ok/exec-gpu-bench.json" | cut -d: -f1)" \
  "$work/ok/exec-gpu-bench.json" >"$work/cut/exec-gpu-bench.json"
/usr/bin/python3 "$script" "$work/cut" "$work/cut/report.md" >/dev/null || fail "cut-off JSON refused"
grep -q '^| 256 | bf16 | 4100 | 4400 |' "$work/cut/report.md" || fail "cut-off JSON's complete entries lost"
grep -q 'exec-gpu-bench.json was cut off .*: 2 complete entries kept' "$work/cut/report.md" || fail "the cut is not noted"

# Cut before its first entry (an empty file, or one that is not Google Benchmark's): the rest of
# the report is still written, and the file is named in a note.
for text in '' '{"context": {"date": '; do
  rm -rf "$work/bad" && mkdir "$work/bad"
  cp "$work/ok/summary.md" "$work/bad/"
  printf '%s' "$text" >"$work/bad/exec-gpu-bench.json"
  /usr/bin/python3 "$script" "$work/bad" "$work/bad/report.md" >/dev/null 2>"$work/bad/err" ||
    fail "a bench file without entries stopped the report: $(cat "$work/bad/err")"
  grep -q 'Note: exec-gpu-bench.json holds no complete entry' "$work/bad/report.md" || fail "the empty bench file is not noted"
  grep -q '^## Machine: basin on gpu-host' "$work/bad/report.md" || fail "the rest of the report lost"
done
echo "gpu_report: all checks passed"
