#!/bin/bash
# A rank that dies (kill) or hangs (hang: SIGSTOP, so it holds its sockets open and never answers)
# mid-run: `basin train --nproc 2` must end within the communication timeout (Gloo's wait and the
# roll call that follows it fit inside it), name the rank and what happened to it, keep the checkpoint already written, and
# continue with --resume to the same final step count. Usage: train_fault_test.sh BASIN_EXE kill|hang
set -u
basin=$1
mode=${2:-kill}
work=$(mktemp -d /tmp/basin-train-fault.XXXXXX)
# Processes whose command line names this run (no procps on a bare system: read /proc).
run_pids() {
  for d in /proc/[0-9]*; do
    tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -q -- "$work/run" && echo "${d#/proc/}"
  done
}
children_of() {
  for d in /proc/[0-9]*; do
    [ "$(awk '{print $4}' "$d/stat" 2>/dev/null)" = "$1" ] && echo "${d#/proc/}"
  done
}
trap 'kill -9 $(run_pids) 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; cat "$work/out.txt" 2>/dev/null | tail -20; exit 1; }

"$basin" data synth --out "$work/data" --classes 4 --train-per-class 32 --val-per-class 4 \
  --size 64 --quiet || fail "data synth"
args=(train --data "$work/data" --out "$work/run" --blocks 1,1,1 --width 8 --image-size 48
      --batch 8 --epochs 40 --threads 1 --loader-threads 1 --no-validate --checkpoint-every 2
      --comm-timeout-s 5 --nproc 2)
"$basin" "${args[@]}" > "$work/out.txt" 2>&1 &
launcher=$!
sleep 0.5
if grep -q "built without oneDNN" "$work/out.txt"; then
  echo "skipped: built without oneDNN (libdnnl-dev)"
  exit 77
fi
# Wait for a checkpoint, then kill or stop rank 1 (the child whose environment says RANK=1).
for _ in $(seq 1 300); do
  [ -f "$work/run/checkpoint.basin" ] && break
  sleep 0.1
done
[ -f "$work/run/checkpoint.basin" ] || fail "no checkpoint appeared"
victim=""
for pid in $(children_of $launcher); do
  tr '\0' '\n' < /proc/$pid/environ | grep -qx "RANK=1" && victim=$pid
done
[ -n "$victim" ] || fail "rank 1 not found among the launcher's children"
killed_at=$(date +%s%N)
if [ "$mode" = hang ]; then kill -STOP "$victim"; else kill -9 "$victim"; fi
wait $launcher
code=$?
took_ms=$(( ($(date +%s%N) - killed_at) / 1000000 ))
[ $code -ne 0 ] || fail "the launcher exited 0 after rank 1 was hit ($mode)"
if [ "$mode" = hang ]; then
  # Rank 0 gives up after Gloo's 4 s and a roll call of 1 s (the 5 s timeout), and names rank 1
  # and where the loop was; the launcher adds that rank 1's process was stopped.
  grep -q "rank 1 did not answer the roll call" "$work/out.txt" || fail "the hung rank is not named"
  grep -Eq "step [0-9]+ \(epoch [0-9]+\), (in backward|waiting for the gradient allreduce|summing the loss)" \
    "$work/out.txt" || fail "the error does not say where the training loop was"
  grep -q "rank 1 (pid $victim) was stopped" "$work/out.txt" || fail "the launcher does not say rank 1 was stopped"
  [ "$took_ms" -ge 4000 ] || fail "stopped after ${took_ms} ms, before Gloo's 4 s wait could expire"
else
  grep -q "rank 1 was killed by signal" "$work/out.txt" || fail "the rank and its death are not named"
fi
echo "launcher exited $code ${took_ms} ms after rank 1 was hit ($mode)"
# The 5 s timeout, with room for a loaded machine (rank 0 may be mid-step when rank 1 is hit).
[ "$took_ms" -lt 8000 ] || fail "took ${took_ms} ms to stop (timeout 5 s)"
[ -z "$(run_pids)" ] || fail "ranks still running"
ls "$work/run" | grep -q "^\.rendezvous" && fail "rendezvous directory left behind"

# Resume: the checkpoint survived, and the run completes.
"$basin" "${args[@]}" --resume > "$work/out.txt" 2>&1 || fail "resume failed"
grep -q "resumed from" "$work/out.txt" || fail "did not resume"
grep -q '"finished": true' "$work/out.txt" || fail "resumed run did not finish"
steps=$(grep -c '"comm_wait_s"' "$work/run/log.jsonl")
# 128 images over 2 ranks of batch 8: 8 steps an epoch, 40 epochs.
[ "$steps" -eq 320 ] || fail "log has $steps steps, expected 320 (each step once)"
echo "passed ($mode): rank 1 named, stopped in ${took_ms} ms, resumed to step 320"
