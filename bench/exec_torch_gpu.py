#!/usr/bin/env python3
"""PyTorch's ResNet-50 training step on the GPU: the peer of bench/exec_gpu_bench.cc.

torchvision resnet50 in channels_last, SGD with momentum 0.9 and weight decay 1e-4, synthetic
224x224 inputs already on the GPU, cudnn.benchmark on; bf16/fp16 through autocast (fp16 with a
GradScaler), fp32 with TF32 convolutions off unless asked. Eager, or the model under
torch.compile (the optimizer eager).

usage: exec_torch_gpu.py BATCH PRECISION MODE STEPS [--tf32]
  PRECISION: fp32, bf16 or fp16; MODE: eager or compile
Prints one JSON line: {"seconds": [...], "images_per_s": x, "peak_bytes": n,
"peak_reserved_bytes": n, "device_used_bytes": n, "torch": "...", "device": "..."}; peak_bytes
is what tensors held at most, peak_reserved_bytes what the caching allocator took from the
driver, device_used_bytes the device memory in use after the timed steps less that with only
the CUDA context (cudaMemGetInfo), measured as basin's benchmark measures its own.
"""
import json
import sys
import time

import torch
import torchvision


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    batch, precision, mode, steps = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    if precision not in ("fp32", "bf16", "fp16") or mode not in ("eager", "compile"):
        sys.exit(__doc__)
    if not torch.cuda.is_available():
        sys.exit("skipped: no GPU")
    torch.backends.cudnn.benchmark = True
    tf32 = "--tf32" in sys.argv
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    dev = torch.device("cuda")
    # The device memory in use with only the CUDA context, as basin's benchmark takes its
    # baseline: the difference after the timed steps is then measured the same way for both.
    torch.zeros(1, device=dev)
    torch.cuda.synchronize()
    free_before, _ = torch.cuda.mem_get_info()
    model = torchvision.models.resnet50().to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    if mode == "compile":
        # The model compiled (forward, and backward through AOTAutograd), the optimizer eager:
        # compiling the whole step would break the graph at backward() and recompile once the
        # gradients exist, minutes of compiling on the lent machine's short call.
        model = torch.compile(model)
    images = torch.randn(batch, 3, 224, 224, device=dev).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (batch,), device=dev)
    loss_fn = torch.nn.CrossEntropyLoss()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_fn(model(images), labels)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss

    for _ in range(3):  # warm-up: cudnn.benchmark's search, compilation
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
    free_after, _ = torch.cuda.mem_get_info()
    print(json.dumps({"seconds": seconds, "images_per_s": batch * steps / sum(seconds),
                      "peak_bytes": torch.cuda.max_memory_allocated(),
                      "peak_reserved_bytes": torch.cuda.max_memory_reserved(),
                      "device_used_bytes": free_before - free_after, "torch": torch.__version__,
                      "device": torch.cuda.get_device_name()}))


if __name__ == "__main__":
    main()
