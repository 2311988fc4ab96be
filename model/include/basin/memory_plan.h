// basin model: which memory a training step's layer outputs live in, and for how long.
//
// One plan for both sides: the executor (exec::Net) places its tensors by it, asking its
// backend what fits where, and the simulator sizes a step's device memory by it, so the memory
// the planner budgets for a batch is the memory the executor holds for it.
//
// A training step runs forward over the layers, then backward over them in reverse. A layer's
// output is kept from its forward until the last backward that reads it has run; after that its
// memory is dead until the next forward, and the executor lends it to gradients.
#pragma once

#include <functional>
#include <vector>

#include "model.h"

namespace basin::model {

// How the caller lays outputs out, asked while planning. Sizes in elements of the caller's type.
struct MemoryLayout {
  // Gives `layer`'s output memory of its own; returns how many elements that memory holds.
  std::function<long long(int layer)> allocate;
  // Whether `layer`'s output fits in the memory `host` was given, starting `offset` in.
  std::function<bool(int layer, int host, long long offset)> fits;
};

struct TrainingMemoryPlan {
  // Per layer: the first layer of the in-place chain whose tensor its output is. Written in
  // place over an input nothing else reads, then or in backward: a ReLU over a batchnorm or a
  // sum, a sum over its main path's batchnorm (ResNet-50 keeps 6 tensors a block, not 10).
  std::vector<int> chain;
  // Per chain's first layer (else n): the smallest layer index whose backward reads the tensor,
  // n for none. Conv, batchnorm, fc and pooling read their input; ReLU and pooling their own
  // output, and so does a batchnorm whose ReLU is done in the same pass (`fused_relu`).
  std::vector<int> read_until;
  std::vector<bool> fused_relu;  // per layer: a batchnorm whose following ReLU is in place
  // Per chain's first layer (else -1): the layer whose memory holds the tensor (itself, or an
  // earlier chain no backward reads, whose memory it shares from `offset` elements in).
  std::vector<int> owner;
  std::vector<long long> offset;
  // Per owner (else -1): the layer after whose backward its memory is dead; n when no backward
  // reads what it holds (dead from backward's start); -1 for the logits, which callers read
  // after backward.
  std::vector<int> dead_after;
};

// Plans `net` at `batch` images. An output no backward reads (a downsample shortcut's
// batchnorm, read only by its block's sum) holds its memory only until its last forward
// reader has run; then that memory holds later outputs side by side (where layout.fits says
// so), only outputs that die in backward before the first gradient of that memory's size is
// needed, so the memory is whole and dead again when the gradients need it.
TrainingMemoryPlan plan_training_memory(const Network& net, int batch, const MemoryLayout& layout);

// Bytes a training step holds for activations at `batch` images of `bytes_per_value`-byte
// values, with outputs packed as a layout without padding allows (a GPU's NHWC): the input
// image, every owner's memory, and two of the largest output for gradients that find no dead
// memory of their size (ResNet-18's stem) or, in the first step only, the memory a GPU's
// algorithm search for a convolution that adds into its input's gradient writes into.
double training_activation_bytes(const Network& net, int batch, double bytes_per_value);

}  // namespace basin::model
