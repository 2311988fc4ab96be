#!/usr/bin/env bash
# Everything basin measures on a GPU machine, in phases run by one call of the device tool: build,
# GPU tests, benchmarks against PyTorch, NCCL, end-to-end training from JPEG files, and
# torch.compile last. Written so that a session lent a GPU spends its few minutes measuring, not
# typing.
#
#   scripts/gpu_session.sh PHASE...    PHASE: build test nccl bench e2e compile profile (all: these, in order)
#
# Results go to $OUT (the device tool's folder; else build-gpu/session), one log per phase plus
# summary.md (device, driver, date, commit, each phase's exit status and seconds). A phase that
# needs a GPU and finds none says "skipped: no GPU" and exits 77, as the tests do; the build runs
# anywhere, so the script can be tried on a machine without one.
#
# On the device machine (Ubuntu, no Gloo/oneDNN/TurboJPEG/CLI11, no package registry), first, here:
#   "$PWD/../shared/device/fetch-debs.sh" libcli11-dev libjpeg62-turbo-dev libjpeg62-turbo
# then one call (docs/gpu-session.md has it with its carry and time limit):
#   scripts/gpu_session.sh all
# The phases share the call's budget (BASIN_CALL_BUDGET_S, 570 s) in order of what matters most,
# and each is also held to its own cap (BASIN_CAP_<phase> seconds), so that one phase running long
# cannot starve the rest and every log still comes back.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build-gpu/session}
build=${BASIN_GPU_BUILD:-build-gpu}
mkdir -p "$out"
[ -f .devdeps/unpack.sh ] && source .devdeps/unpack.sh >/dev/null

have_gpu() { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; }
# All phases together stop before the call's 10 minutes, so that their logs still come back: each
# phase gets what is left of this budget.
deadline=$(( $(date +%s) + ${BASIN_CALL_BUDGET_S:-570} ))
# Each phase's own cap, in seconds: about twice what it is expected to take on the device's 16
# cores (the build took 250 s on 2 cores here), so a hang loses that much, not the whole call.
# The build's cap is the whole budget's share it may take: nothing runs without it.
declare -A default_cap=([build]=420 [test]=200 [bench]=240 [nccl]=60 [e2e]=150 [compile]=240 [profile]=150)

phase_build() {
  local archs=${BASIN_CUDA_ARCHS:-}
  [ -z "$archs" ] && have_gpu && archs=native
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    ${archs:+-DCMAKE_CUDA_ARCHITECTURES=$archs} || return
  local targets=(basin basin_gpu_tests)
  for t in basin_exec_gpu_bench basin_kernels_bench basin_nccl_bench basin_nccl_tuner; do
    ninja -C "$build" -t targets all 2>/dev/null | grep -q "^$t:" && targets+=("$t")
  done
  # -k 0: one target that fails to build leaves the others built, and their phases run.
  ninja -C "$build" -k 0 -j "$(nproc)" "${targets[@]}"
}

phase_test() {
  # The ranks that share one CUDA context last (ranks_gpu_test.cc says why): a hang of theirs
  # then costs its short timeout, not the NCCL tests after it.
  "$build/tests/basin_gpu_tests" --durations yes '~[shared-context]'
  local rc=$?
  # (A build without Gloo has no such tests, and Catch2 v3 fails a run that matches none.)
  if [ "$rc" -ne 77 ] && "$build/tests/basin_gpu_tests" --list-tags 2>/dev/null | grep -q 'shared-context'; then
    "$build/tests/basin_gpu_tests" --durations yes '[shared-context]'
    local shared=$?
    [ "$rc" -eq 0 ] && rc=$shared
  fi
  # 77 is "no GPU"; where nvidia-smi lists one, CUDA not seeing it is a failure, not a skip.
  if [ "$rc" -eq 77 ] && have_gpu; then
    echo "nvidia-smi lists a GPU but the tests found none (see the CUDA error above)"
    return 1
  fi
  return $rc
}

phase_bench() {
  have_gpu || { echo "skipped: no GPU"; return 77; }
  # Independent: a failing kernel benchmark does not cost the ResNet-50 comparison.
  "$build/bench/basin_kernels_bench"
  local kernels=$?
  # basin (plain and persistent batch norm) and PyTorch eager, every configuration.
  "$build/bench/basin_exec_gpu_bench" --benchmark_out="$out/exec-gpu-bench.json" \
    --benchmark_filter='^BM_BasinGpuResNet50Step/|^BM_PyTorchGpuResNet50Step/'
  local step=$?
  return $(( step != 0 ? step : kernels ))
}

# torch.compile (a minute or more of compiling) for the issue's bf16 batch 256, beside basin's
# bf16 line (plain batch norm) again, so that its ratio is measured in the same process.
phase_compile() {
  have_gpu || { echo "skipped: no GPU"; return 77; }
  "$build/bench/basin_exec_gpu_bench" --benchmark_out="$out/exec-gpu-compile.json" \
    --benchmark_filter='^BM_BasinGpuResNet50Step/256/1/0/|^BM_PyTorchCompiledGpuResNet50Step/256/1/'
}

# ResNet-50, bf16, batch 256, from ImageNet-sized JPEGs (470x390 at quality 97, ImageNet's mean
# size and bit rate) through the CPU decode pipeline and the GPU input stage, with more and more
# loader threads: where images/s stops growing and the data wait ends is how many cores one GPU
# takes to feed.
phase_e2e() {
  have_gpu || { echo "skipped: no GPU"; return 77; }
  local data="$build/e2e-data" steps=${BASIN_E2E_STEPS:-20}
  [ -d "$data/train" ] || "$build/basin" data synth --out "$data" --classes 100 \
    --train-per-class 16 --val-per-class 1 --size 470x390 --quality 97 || return
  # The CPU side alone first: decode-only images/s per core, what one GPU's input stage is fed.
  for threads in 1 "$(nproc)"; do
    "$build/basin" data load --root "$data" --batch-size 256 --batches 8 --threads "$threads" \
      --decode-only | grep 'per thread' || return
  done
  printf '%-8s %-12s %-10s %s\n' threads images/s data_wait "(median over steps 5..$steps)"
  for threads in ${BASIN_E2E_THREADS:-1 2 4 8 15}; do
    local run="$build/e2e-run-$threads"
    rm -rf "$run"
    "$build/basin" train --data "$data" --out "$run" --model resnet50 --device gpu \
      --precision bf16 --batch 256 --loader-threads "$threads" --epochs 1000 \
      --stop-after "$steps" --no-validate --quiet >"$run.log" 2>&1 || { cat "$run.log"; return 1; }
    python3 - "$run/log.jsonl" "$threads" <<'EOF'
import json, statistics, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"step"' in l]
# Step records only: an epoch's record carries images_per_s too, but no step_s or data_wait_s.
steady = [s for s in steps if "type" not in s and s.get("step", 0) >= 5 and "data_wait_s" in s]
ips = statistics.median(s["images_per_s"] for s in steady)
wait = sum(s["data_wait_s"] for s in steady) / sum(s["step_s"] for s in steady)
print(f"{sys.argv[2]:<8} {ips:<12.0f} {wait:<10.2f}")
EOF
  done
}

# basin's own step measured into a device profile (basin profile): fp32 (TF32), bf16 and fp16 at
# 32 and 256 images, what the simulator calibrates basin train's predictions by. Last, as the
# least needed; its log stays on the machine and the profile goes into summary.md (8 files).
phase_profile() {
  have_gpu || { echo "skipped: no GPU"; return 77; }
  "$build/basin" profile --out "$build/basin-profile.json" --steps 10 --warmup 3
}

phase_nccl() {
  have_gpu || { echo "skipped: no GPU"; return 77; }
  local gpus
  gpus=$(nvidia-smi -L | grep -c '^GPU ')
  "$build/bench/basin_nccl_bench" --ranks "$gpus"
  local bench=$?
  # basin's NCCL tuner plugin inside a real NCCL (docs/tuner.md): it loads, reads its rules and
  # says so in one line at the communicator's creation.
  local plugin="$build/libnccl-tuner-basin.so" rules="$build/tuner-check.conf"
  if [ -f "$plugin" ]; then
    printf '%s\n' "allreduce,0,65535,tree,ll,4,-1,-1" "allreduce,65536,4294967295,ring,simple,-1,-1,-1" >"$rules"
    NCCL_TUNER_PLUGIN="$plugin" BASIN_TUNER_FILE="$rules" NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,TUNING \
      "$build/bench/basin_nccl_bench" --ranks 1 --iterations 2 2>&1 | grep -i -E 'tuner' | head -20
    echo "tuner plugin check: ${PIPESTATUS[0]} (the lines above should include 'basin tuner: 2 rules')"
  else
    echo "tuner plugin check: $plugin was not built"
  fi
  return $bench
}

phases=("$@")
[ ${#phases[@]} -eq 0 ] && { sed -n '2,20p' "$0"; exit 2; }
# NCCL before the benchmarks: a minute, and the only check of NCCL against the simulator,
# where the benchmarks may take what is left of the first call.
[ "${phases[0]}" = all ] && phases=(build test nccl bench e2e compile profile)
summary="$out/summary.md"
{
  echo "# basin on $(hostname), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- commit: $(git describe --always --dirty 2>/dev/null || echo unknown)"
  if have_gpu; then
    echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
  else
    echo "- GPU: none found"
  fi
  echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  echo "- CUDA: $("$nvcc" --version 2>/dev/null | grep -o 'release [0-9.]*' || echo none)"
  echo
  echo "| phase | exit | seconds | log |"
  echo "|---|---|---|---|"
} >"$summary"
status=0
build_tail=
# A profile from an earlier call on a warm machine is not this call's.
rm -f "$build/basin-profile.json"
for p in "${phases[@]}"; do
  declare -F "phase_$p" >/dev/null || { echo "unknown phase: $p (build test bench nccl e2e compile profile all)" >&2; exit 2; }
  start=$(date +%s)
  left=$(( deadline - start ))
  cap_name="BASIN_CAP_$p"
  cap=${!cap_name:-${default_cap[$p]}}
  [ "$cap" -lt "$left" ] && left=$cap
  # The device tool returns at most 8 files: the build keeps its log beside the build and its
  # last lines go into the summary (40 when it fails), so that the other phases' 7 files fit,
  # also when `ninja -k 0` built some targets and those phases wrote their JSON.
  log="$out/$p.log"
  [ "$p" = build ] && log="$build/build.log" && mkdir -p "$build"
  [ "$p" = profile ] && log="$build/profile.log" && mkdir -p "$build"
  if [ "$left" -lt 15 ]; then
    # Said in the summary only for the phases whose logs stay on the machine, so that a file
    # of theirs cannot push the call past the 8 files that come back.
    echo "phase $p: not started, the call's budget is spent" | tee "$log"
    rc=124
  else
    # The phase runs in a child bash, so that timeout can stop it with everything it started.
    export -f "phase_$p" have_gpu
    export build out
    # -k: a phase that ignores the TERM is killed 10 s later, inside the call's last 30 s.
    timeout -k 10 "$left" bash -c "phase_$p" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 124 ] && echo "phase $p: stopped after $left s (its cap or the call's budget)" | tee -a "$log"
    if [ "$p" = build ]; then
      if [ "$rc" -ne 0 ]; then build_tail=$(tail -n 40 "$log"); else build_tail=$(tail -n 3 "$log"); fi
    fi
  fi
  shown=${log#"$out/"}
  [ "$p" = build ] && shown="kept on the machine; its end is below"
  [ "$p" = profile ] && shown="kept on the machine; the profile is below"
  echo "| $p | $rc | $(( $(date +%s) - start )) | $shown |" >>"$summary"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && status=1
done
if [ -n "${build_tail:-}" ]; then
  { echo; echo "The build log's last lines:"; echo; printf '%s\n' "$build_tail" | sed 's/^/    /'; } >>"$summary"
fi
if [ -s "$build/basin-profile.json" ] && [[ " ${phases[*]} " == *" profile "* ]]; then
  { echo; echo "The device profile basin profile measured:"; echo; echo '```json';
    cat "$build/basin-profile.json"; echo '```'; } >>"$summary"
fi
cat "$summary"
exit $status
