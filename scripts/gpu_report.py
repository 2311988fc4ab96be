#!/usr/bin/python3
"""Turns what one call of scripts/gpu_session.sh brought back into reports/gpu-<date>.md.

usage: scripts/gpu_report.py RESULTS_DIR [REPORT.md]

RESULTS_DIR holds the session's files (summary.md, test.log, bench.log, exec-gpu-bench.json,
exec-gpu-compile.json, e2e.log, nccl.log, compile.log; any may be missing). The report states
the device, driver and date from summary.md, the GPU tests' result line, the ResNet-50 step of
basin beside PyTorch eager and torch.compile (images/s, device memory, ratios, read from Google
Benchmark's JSON), and copies the e2e and NCCL tables. It writes to a temporary file and renames
it, so a failure leaves no partial report. Written so that a session lent a GPU spends its time
on the figures, not on formatting them.
"""
import json
import os
import re
import sys
import tempfile

PRECISION = {"0": "fp32", "1": "bf16", "2": "fp16"}  # exec::Precision's order


def read(folder, name):
    path = os.path.join(folder, name)
    return open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else None


def benchmarks(folder, name, notes):
    """The entries of Google Benchmark's JSON. A run stopped by its cap leaves the file cut off
    after its last complete entry (the reporter writes each as it finishes): those are kept and
    the cut is noted; a file with no entries list at all is noted and gives none."""
    text = read(folder, name)
    if text is None:
        return []
    path = os.path.join(folder, name)
    try:
        return json.loads(text).get("benchmarks", [])
    except json.JSONDecodeError as e:
        start = text.find('"benchmarks"')
        bracket = text.find("[", start) if start >= 0 else -1
        if bracket < 0:
            # Cut before its first entry (or empty): the other sections still make the report.
            notes.append(f"{name} holds no complete entry (its phase stopped early, or it is not Google "
                         f"Benchmark's JSON: {e}).")
            return []
        entries, decoder, at = [], json.JSONDecoder(), bracket + 1
        while True:
            while at < len(text) and text[at] in " \t\r\n,":
                at += 1
            try:
                entry, at = decoder.raw_decode(text, at)
            except json.JSONDecodeError:
                break
            entries.append(entry)
        notes.append(f"{name} was cut off (its phase stopped early): {len(entries)} complete entries kept.")
        return entries


def step_rows(entries, notes):
    """(who, batch, precision, persistent) -> entry, from BM_*GpuResNet50Step/... names; a run
    that failed is left out of the table and its error noted."""
    rows = {}
    for b in entries:
        m = re.match(r"BM_(Basin|PyTorch|PyTorchCompiled)GpuResNet50Step/(\d+)/(\d)(?:/(\d))?/", b["name"])
        if m and b.get("error_occurred"):
            notes.append(f"{b['name']} failed: {b.get('error_message', 'no message')}")
        if not m or b.get("error_occurred"):
            continue
        who, batch, precision, persistent = m.group(1), int(m.group(2)), PRECISION[m.group(3)], m.group(4) == "1"
        rows[(who, batch, precision, persistent)] = b
    return rows


def step_table(rows, compile_rows):
    """basin and PyTorch eager from the bench phase; torch.compile against basin's plain-mode line
    measured in the same (compile) process where there is one, else the bench phase's."""
    out = ["| batch | precision | basin images/s | basin, persistent BN | basin GiB | planned GiB "
           "| PyTorch eager images/s | PyTorch GiB | PyTorch reserved GiB | basin / eager "
           "| torch.compile images/s | basin / compile |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    configs = sorted({(k[1], k[2]) for k in list(rows) + list(compile_rows)}, key=lambda c: (-c[0], c[1]))
    fmt = lambda v, spec=".0f": "" if v is None else format(v, spec)
    for batch, precision in configs:
        basin = rows.get(("Basin", batch, precision, False), {})
        persistent = rows.get(("Basin", batch, precision, True), {})
        eager = rows.get(("PyTorch", batch, precision, False), {})
        compiled = compile_rows.get(("PyTorchCompiled", batch, precision, False), {})
        best = max(basin.get("images_per_s", 0), persistent.get("images_per_s", 0)) or None
        beside = (compile_rows.get(("Basin", batch, precision, False), {}).get("images_per_s")
                  or basin.get("images_per_s"))
        ratio = lambda peer, mine=best: mine / peer["images_per_s"] if mine and peer.get("images_per_s") else None
        out.append(f"| {batch} | {precision} | {fmt(basin.get('images_per_s'))} | "
                   f"{fmt(persistent.get('images_per_s'))} | {fmt(basin.get('device_GiB'), '.1f')} | "
                   f"{fmt(basin.get('planned_GiB'), '.1f')} | "
                   f"{fmt(eager.get('images_per_s'))} | {fmt(eager.get('device_GiB'), '.1f')} | "
                   f"{fmt(eager.get('peak_reserved_GiB'), '.1f')} | "
                   f"{fmt(ratio(eager), '.2f')} | {fmt(compiled.get('images_per_s'))} | "
                   f"{fmt(ratio(compiled, beside), '.2f')} |")
    return out


def test_result(log):
    if log is None:
        return "no test.log came back"
    if "skipped: no GPU" in log:
        return "skipped: no GPU"
    lines = [l for l in log.splitlines() if re.match(r"(All tests passed|test cases:)", l)]
    # One line per run of the tests (gpu_session.sh runs those sharing a CUDA context apart).
    return "; ".join(lines) if lines else "no Catch2 summary line (see test.log: the run stopped early)"


def fenced(text):
    return ["```", text.rstrip(), "```"] if text else ["(none came back)"]


def profile_table(summary):
    """basin profile's measurements, from the JSON block gpu_session.sh puts in summary.md."""
    block = re.search(r"The device profile basin profile measured:\s*```json\n(.*?)\n```", summary, re.S)
    if not block:
        return ["(the profile phase did not run or wrote no profile)"]
    try:
        measured = [m for m in json.loads(block.group(1))["measured"] if m.get("source") == "basin"]
    except (ValueError, KeyError, TypeError) as e:
        return [f"(summary.md's profile is not a device profile: {e})"]
    rows = ["| network | precision | batch | images/s | backprop (s) |", "|---|---|---|---|---|"]
    for m in measured:
        rows.append(f"| {m['model']} | {m['precision']} | {m['batch_per_gpu']} | {m['images_per_s']:.0f} |"
                    f" {m.get('backward_s', 0):.4f} |")
    return rows


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    folder = sys.argv[1]
    summary = read(folder, "summary.md")
    if summary is None:
        sys.exit(f"{folder}/summary.md: missing (expected the files scripts/gpu_session.sh writes)")
    date = re.search(r"(\d{4}-\d{2}-\d{2})", summary)
    target = sys.argv[2] if len(sys.argv) == 3 else f"reports/gpu-{date.group(1) if date else 'undated'}.md"
    notes = []
    rows = step_rows(benchmarks(folder, "exec-gpu-bench.json", notes), notes)
    compile_rows = step_rows(benchmarks(folder, "exec-gpu-compile.json", notes), notes)
    failed = [l for l in (read(folder, "test.log") or "").splitlines() if "FAILED" in l]
    # summary.md's own title becomes a section of this report.
    machine = re.sub(r"^# ", "## Machine: ", summary.rstrip(), count=1)
    out = ["# basin on a GPU: tests and the ResNet-50 step against PyTorch", "",
           "Produced by `scripts/gpu_report.py` from one call of `scripts/gpu_session.sh all`"
           " (docs/gpu-session.md).", "", machine, "",
           "## GPU tests", "", f"`basin_gpu_tests`: {test_result(read(folder, 'test.log'))}", ""]
    if failed:
        out += ["Failures (test.log has each one's expansion):", ""] + [f"- {l.strip()}" for l in failed[:20]] + [""]
    out += ["## ResNet-50 v1.5 training step, 224x224, images already on the GPU", "",
            "GiB: device memory in use after the timed steps less that with only the CUDA context,"
            " measured alike for both; planned GiB: what basin's planner budgets for the step"
            " (sim::memory_needed_GB); PyTorch's reserved GiB: its caching allocator's peak reservation."
            " basin / eager uses basin's faster batch-norm mode; basin / compile uses basin's plain-mode"
            " line measured in the compile phase's own process where it came back.", ""]
    out += step_table(rows, compile_rows) if rows or compile_rows else ["(no benchmark JSON came back)"]
    contexts = [b["context_GiB"] for b in rows.values() if "context_GiB" in b]
    if contexts:
        # The least: later configurations also count libraries earlier ones loaded.
        out += ["", "Device memory in use before a configuration's backend, at least (the CUDA context, the"
                f" driver and any other process; not in the planner's budget): {min(contexts):.2f} GiB."]
    out += [""] + [f"Note: {n}" for n in notes] if notes else []
    out += ["", "## basin's own step as a device profile (basin profile; the JSON is in the machine section)", ""]
    out += profile_table(summary)
    out += ["", "## End to end from JPEG files (e2e.log)", ""] + fenced(read(folder, "e2e.log"))
    out += ["", "## NCCL per-bucket allreduce beside the simulator (nccl.log)", ""] + fenced(read(folder, "nccl.log"))
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".gpu-report-")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
