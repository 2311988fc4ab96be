#!/usr/bin/python3
"""torchvision's ResNet on weights written by basin, as the reference for basin's executor.

Reads DIR/state/<key>.npy (basin's save_state), DIR/input.npy (N,3,H,W) and DIR/labels.npy,
builds torchvision.models.<arch>(num_classes=K), and writes to DIR/torch/:
  eval_logits.npy    forward in eval mode (running statistics)
  train_logits.npy   forward in training mode (batch statistics)
  after.<buffer>.npy running mean and variance after that training forward
  grad.<param>.npy   gradients of cross_entropy(train_logits, labels, sum) / divisor
  grad64.<param>.npy the same gradients computed in float64 (stored as float32): the reference
                     for gradients, since ResNet-50's fp32 gradients in training mode differ
                     from the exact ones by up to a few percent in torch itself
With --relu-masks MASKS, the float64 model's ReLUs keep exactly the outputs basin kept
(MASKS/000.npy, 001.npy, ...: 1 where basin's ReLU output was positive, in call order), so
its gradients are of the same piecewise-linear function as basin's even where a pre-activation
lies within rounding of zero; relu_flipped.npy holds how many of basin's decisions float64 would
have made otherwise, and of how many.
Used by tests/exec/torch_test.cc; needs Debian's python3-torch and python3-torchvision.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torchvision


class MaskedReLU(torch.nn.Module):
    """ReLU whose kept outputs are given: the next mask of a shared list at each call."""

    def __init__(self, masks):
        super().__init__()
        self.masks = masks
        self.used = 0
        self.flipped = 0

    def forward(self, x):
        if self.used >= len(self.masks):
            sys.exit(f"--relu-masks: the model called ReLU more than the {len(self.masks)} times basin did")
        mask = self.masks[self.used]
        if tuple(mask.shape) != tuple(x.shape):
            sys.exit(f"--relu-masks: mask {self.used} has shape {tuple(mask.shape)}, the ReLU's input {tuple(x.shape)}")
        self.used += 1
        self.flipped += int(((x > 0).to(mask.dtype) != mask).sum())
        return x * mask


def use_masks(model, masks):
    relu = MaskedReLU(masks)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(module, name, relu)
    return relu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--arch", required=True)
    ap.add_argument("--classes", type=int, required=True)
    ap.add_argument("--divisor", type=float, required=True)
    ap.add_argument("--relu-masks", help="directory of basin's ReLU masks for the float64 model")
    a = ap.parse_args()

    torch.set_num_threads(1)
    model = getattr(torchvision.models, a.arch)(num_classes=a.classes)
    exact = getattr(torchvision.models, a.arch)(num_classes=a.classes)
    state = {}
    for key, value in model.state_dict().items():
        arr = np.load(os.path.join(a.dir, "state", key + ".npy"))
        if key.endswith("num_batches_tracked") and arr.dtype != np.int64:
            sys.exit(f"{key}: basin wrote {arr.dtype}, torchvision has int64")
        if tuple(arr.shape) != tuple(value.shape):
            sys.exit(f"{key}: basin wrote shape {arr.shape}, torchvision has {tuple(value.shape)}")
        state[key] = torch.from_numpy(arr)
    model.load_state_dict(state)
    exact.load_state_dict(state)
    exact.double()

    x = torch.from_numpy(np.load(os.path.join(a.dir, "input.npy")))
    labels = torch.from_numpy(np.load(os.path.join(a.dir, "labels.npy"))).long()
    out = os.path.join(a.dir, "torch")
    os.makedirs(out, exist_ok=True)

    model.eval()
    with torch.no_grad():
        np.save(os.path.join(out, "eval_logits.npy"), model(x).numpy())

    model.train()
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, labels, reduction="sum") / a.divisor
    loss.backward()
    np.save(os.path.join(out, "train_logits.npy"), logits.detach().numpy())
    for key, value in model.state_dict().items():
        if "running" in key:
            np.save(os.path.join(out, "after." + key + ".npy"), value.numpy())
    for name, p in model.named_parameters():
        np.save(os.path.join(out, "grad." + name + ".npy"), p.grad.numpy())

    exact.train()
    relu = None
    if a.relu_masks:
        files = sorted(f for f in os.listdir(a.relu_masks) if f.endswith(".npy"))
        relu = use_masks(exact, [torch.from_numpy(np.load(os.path.join(a.relu_masks, f))).double() for f in files])
    loss = torch.nn.functional.cross_entropy(exact(x.double()), labels, reduction="sum") / a.divisor
    loss.backward()
    if relu is not None:
        if relu.used != len(relu.masks):
            sys.exit(f"--relu-masks: basin ran {len(relu.masks)} ReLUs, the model {relu.used}")
        total = sum(int(m.numel()) for m in relu.masks)
        print(f"float64 would have decided {relu.flipped} of basin's {total} ReLU outputs otherwise")
        np.save(os.path.join(out, "relu_flipped.npy"), np.array([relu.flipped, total], dtype=np.float32))
    for name, p in exact.named_parameters():
        np.save(os.path.join(out, "grad64." + name + ".npy"), p.grad.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
