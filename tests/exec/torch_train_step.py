#!/usr/bin/python3
"""Times torchvision's ResNet training step (forward, loss, backward) on the CPU: the peer that
bench/exec_bench.cc measures basin's executor against, with the same batch, image size and
thread count. Prints one JSON line: seconds per step (each step timed), images per second.

usage: torch_train_step.py ARCH BATCH IMAGE THREADS STEPS
"""
import json
import sys
import time

import torch
import torchvision


def main():
    arch, batch, image, threads, steps = sys.argv[1], *map(int, sys.argv[2:6])
    torch.set_num_threads(threads)
    model = getattr(torchvision.models, arch)()
    model.train()
    x = torch.randn(batch, 3, image, image)
    labels = torch.randint(0, 1000, (batch,))

    def step():
        for p in model.parameters():
            p.grad = None  # basin overwrites its gradients too
        loss = torch.nn.functional.cross_entropy(model(x), labels, reduction="sum") / batch
        loss.backward()

    step()  # first-call setup (allocations, oneDNN primitive creation), as basin's warm-up
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    print(json.dumps({"seconds": times, "images_per_s": batch * steps / sum(times),
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
