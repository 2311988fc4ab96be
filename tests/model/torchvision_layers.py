#!/usr/bin/env python3
"""Dump torchvision's own ResNet, layer by layer, as JSON for basin's model tests.

basin's layer lists (model/src/resnet.cc) are written by hand so the simulator runs without
PyTorch; this script is the independent side of the check. It builds the network with
torchvision (random weights, nothing downloaded), runs one image through it and records, for
every module that holds parameters plus the two pools, in forward order: its torchvision name,
kind, parameter count and output shape, and for convs and fc the forward FLOPs that PyTorch's
own counter (torch.utils.flop_counter, 2 FLOPs a multiply-add) measures. Nothing here reads
basin's code.

    python3 tests/model/torchvision_layers.py resnet50 > tests/model/fixtures/resnet50_torch_params.json

Needs torch and torchvision (pip install torch torchvision in a throwaway venv is enough).
"""
import json
import sys

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

KINDS = {
    torch.nn.Conv2d: "conv",
    torch.nn.BatchNorm2d: "batchnorm",
    torch.nn.Linear: "fc",
    torch.nn.MaxPool2d: "maxpool",
    torch.nn.AdaptiveAvgPool2d: "avgpool",
}


def dump(arch: str, image_size: int) -> dict:
    net = getattr(torchvision.models, arch)(weights=None).eval()
    rows = []

    def hook(name, kind):
        def record(module, inputs, output):
            rows.append({
                "name": name,
                "kind": kind,
                # Trainable parameters only: batchnorm's running stats are buffers.
                "params": sum(p.numel() for p in module.parameters(recurse=False)),
                "out_shape": list(output.shape[1:]),
            })
        return record

    for name, module in net.named_modules():
        kind = KINDS.get(type(module))
        if kind is not None:
            module.register_forward_hook(hook(name, kind))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, image_size, image_size))
    # The counter keys modules by class name of the root plus the module path.
    counts = counter.get_flop_counts()
    for row in rows:
        if row["kind"] in ("conv", "fc"):
            row["flops"] = sum(counts[f"{type(net).__name__}.{row['name']}"].values())
    return {
        "network": arch,
        "image_size": image_size,
        "generator": f"tests/model/torchvision_layers.py with torch {torch.__version__}, "
                     f"torchvision {torchvision.__version__}",
        "total_params": sum(p.numel() for p in net.parameters()),
        "total_flops": counter.get_total_flops(),
        "layers": rows,
    }


if __name__ == "__main__":
    arch = sys.argv[1] if len(sys.argv) > 1 else "resnet50"
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 224
    d = dump(arch, size)
    # One layer a line, so a diff of a regenerated fixture reads layer by layer.
    layers = d.pop("layers")
    head = json.dumps(d, indent=1)[:-2]
    rows = ",\n".join("  " + json.dumps(r) for r in layers)
    sys.stdout.write(f'{head},\n "layers": [\n{rows}\n ]\n}}\n')
