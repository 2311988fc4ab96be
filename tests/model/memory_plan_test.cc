// The training step's memory plan (basin/memory_plan.h) on every ResNet: outputs that share
// memory are never alive at once, what no backward reads is not held for backward, and the
// in-place chains are the ones the layer graph allows. Lifetimes are worked out here from the
// layer graph alone, not taken from the plan.
#include <basin/memory_plan.h>

#include <algorithm>
#include <vector>

#include "../catch.h"

using namespace basin::model;

namespace {

long long elements(const Layer& l, int batch) {
  return 1LL * batch * l.out_channels * l.out_h * l.out_w;
}

// Packed memory of exactly the elements asked, as a GPU's NHWC tensors.
TrainingMemoryPlan packed_plan(const Network& net, int batch, std::vector<long long>& capacity) {
  capacity.assign(net.layers.size(), 0);
  return plan_training_memory(
      net, batch,
      {.allocate = [&](int i) { return capacity[i] = elements(net.layers[i], batch); },
       .fits =
           [&](int i, int host, long long offset) {
             return offset + elements(net.layers[i], batch) <= capacity[host];
           }});
}

}  // namespace

TEST_CASE("Outputs sharing memory are never alive at once", "[model][memory]") {
  const Network net = GENERATE(
      resnet(18), resnet(34), resnet(50), resnet(101), resnet(152),
      resnet(ResNetShape{
          .blocks = {1, 2, 1}, .bottleneck = true, .width = 8, .image_size = 32, .classes = 7}));
  const int batch = 4;
  CAPTURE(net.name, net.layers.size());
  const auto& layers = net.layers;
  const int n = static_cast<int>(layers.size());
  std::vector<long long> capacity;
  const TrainingMemoryPlan plan = packed_plan(net, batch, capacity);

  // From the graph: a tensor's forward life runs from its first layer to the last layer that
  // writes it in place or reads it; backward reads it if a conv, batchnorm, fc or pool reads
  // it, or a ReLU, pool or ReLU-fused batchnorm wrote it.
  std::vector<int> forward_end(n, -1);
  std::vector<bool> read_backward(n, false);
  for (int i = 0; i < n; ++i) {
    const int c = plan.chain[i];
    forward_end[c] = std::max(forward_end[c], i);
    for (int in : layers[i].inputs)
      if (in >= 0) forward_end[plan.chain[in]] = std::max(forward_end[plan.chain[in]], i);
    const LayerKind k = layers[i].kind;
    const int in = layers[i].inputs[0];
    if (in >= 0 && k != LayerKind::relu && k != LayerKind::add)
      read_backward[plan.chain[in]] = true;
    if (k == LayerKind::relu || k == LayerKind::maxpool || k == LayerKind::avgpool)
      read_backward[c] = true;
    if (k == LayerKind::batchnorm && plan.fused_relu[i]) read_backward[c] = true;
  }

  int shared = 0;
  for (int a = 0; a < n; ++a) {
    if (plan.chain[a] != a) continue;
    REQUIRE(plan.owner[a] >= 0);
    REQUIRE(plan.offset[a] + elements(layers[a], batch) <= capacity[plan.owner[a]]);
    for (int b = a + 1; b < n; ++b) {
      if (plan.chain[b] != b || plan.owner[b] != plan.owner[a]) continue;
      const long long a_end = plan.offset[a] + elements(layers[a], batch);
      const long long b_end = plan.offset[b] + elements(layers[b], batch);
      if (plan.offset[b] >= a_end || plan.offset[a] >= b_end) continue;  // side by side
      ++shared;
      CAPTURE(layers[a].name, layers[b].name);
      // The earlier one is done with before the later one is written, for good.
      CHECK_FALSE(read_backward[a]);
      CHECK(forward_end[a] < b);
    }
  }
  // Every downsample shortcut but the last stage's gives its memory to later outputs.
  int shortcuts = 0;
  for (const auto& l : layers)
    if (l.kind == LayerKind::add && layers[l.inputs[1]].kind == LayerKind::batchnorm) ++shortcuts;
  CHECK(shared >= std::max(shortcuts - 1, 0));

  // In place: every ReLU over a batchnorm or sum read by nothing else, and every sum over its
  // main path's batchnorm.
  for (int i = 0; i < n; ++i) {
    const Layer& l = layers[i];
    const int src = l.inputs[0];
    if (src < 0) continue;
    const bool over_bn_or_sum =
        layers[src].kind == LayerKind::batchnorm || layers[src].kind == LayerKind::add;
    if ((l.kind == LayerKind::relu && over_bn_or_sum) ||
        (l.kind == LayerKind::add && layers[src].kind == LayerKind::batchnorm))
      CHECK(plan.chain[i] == plan.chain[src]);
    else
      CHECK(plan.chain[i] == i);
  }
}

TEST_CASE("Memory no backward reads is dead from backward's start unless it holds later outputs",
          "[model][memory]") {
  const Network net = resnet(50);
  std::vector<long long> capacity;
  const TrainingMemoryPlan plan = packed_plan(net, 8, capacity);
  const int n = static_cast<int>(net.layers.size());
  for (int o = 0; o < n; ++o) {
    if (plan.owner[o] != o) continue;
    CAPTURE(net.layers[o].name);
    bool holds_others = false;
    for (int i = 0; i < n; ++i) holds_others |= i != o && plan.chain[i] == i && plan.owner[i] == o;
    if (o == n - 1)
      CHECK(plan.dead_after[o] == -1);  // the logits: read after backward
    else if (!holds_others)
      CHECK(plan.dead_after[o] == plan.read_until[o]);
    else
      CHECK(plan.dead_after[o] < n);
  }
  // The last shortcut's memory takes nothing: backward's first gradients need it whole.
  const Layer* last = find_layer(net, "layer4.0.downsample.1");
  REQUIRE(last != nullptr);
  const int last_index = static_cast<int>(last - net.layers.data());
  CHECK(plan.dead_after[last_index] == n);
}
