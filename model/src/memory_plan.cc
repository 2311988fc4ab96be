// The training step's memory plan (memory_plan.h): in-place chains, which backward reads each
// output last, and where each output lives.
//
// Why outputs no backward reads lend their memory only to outputs that die early: releasing a
// shortcut's memory after its sum takes it off the kept outputs but leaves each stage's first
// gradients no dead memory of their size, so the peak does not move; holding only later,
// smaller stages' outputs there, the memory is dead again when the stage's gradients start
// (ResNet-50's figures: exec/src/net_memory.cc).
#include <basin/memory_plan.h>

#include <algorithm>
#include <stdexcept>

namespace basin::model {
namespace {

constexpr long long kAlign = 128;  // elements between outputs sharing memory: 256 bytes in 16-bit

long long elements(const Layer& l, int batch) {
  return 1LL * batch * l.out_channels * l.out_h * l.out_w;
}

}  // namespace

TrainingMemoryPlan plan_training_memory(const Network& net, int batch, const MemoryLayout& layout) {
  const auto& layers = net.layers;
  const int n = static_cast<int>(layers.size());
  TrainingMemoryPlan plan;
  std::vector<int> consumers(n, 0), last_consumer(n, -1);
  for (int i = 0; i < n; ++i)
    for (int in : layers[i].inputs) {
      if (in >= i) throw std::invalid_argument("layer " + layers[i].name + " reads a later layer");
      if (in >= 0) ++consumers[in], last_consumer[in] = i;
    }

  plan.chain.resize(n);
  plan.fused_relu.assign(n, false);
  for (int i = 0; i < n; ++i) {
    const Layer& l = layers[i];
    const int src = l.inputs.empty() ? -1 : l.inputs[0];
    const LayerKind src_kind = src >= 0 ? layers[src].kind : LayerKind::conv;
    const bool in_place = src >= 0 && consumers[src] == 1 &&
                          ((l.kind == LayerKind::relu &&
                            (src_kind == LayerKind::batchnorm || src_kind == LayerKind::add)) ||
                           (l.kind == LayerKind::add && src_kind == LayerKind::batchnorm));
    if (in_place && l.kind == LayerKind::relu && src_kind == LayerKind::batchnorm)
      plan.fused_relu[src] = true;
    plan.chain[i] = in_place ? plan.chain[src] : i;
  }

  // Per chain: the first backward (smallest index) reading it, and its last forward use.
  const auto& chain = plan.chain;
  plan.read_until.assign(n, n);
  std::vector<int> forward_until(n, -1);
  for (int i = 0; i < n; ++i) {
    const LayerKind kind = layers[i].kind;
    forward_until[chain[i]] = std::max(forward_until[chain[i]], i);
    for (int in : layers[i].inputs)
      if (in >= 0) forward_until[chain[in]] = std::max(forward_until[chain[in]], i);
    const int in = layers[i].inputs.empty() ? -1 : layers[i].inputs[0];
    if (in >= 0 && kind != LayerKind::relu && kind != LayerKind::add)
      plan.read_until[chain[in]] = std::min(plan.read_until[chain[in]], i);
    if (kind == LayerKind::relu || kind == LayerKind::maxpool || kind == LayerKind::avgpool ||
        (kind == LayerKind::batchnorm && plan.fused_relu[i]))
      plan.read_until[chain[i]] = std::min(plan.read_until[chain[i]], i);
  }

  // The backward (layer index) at which the first gradient that fits only in memory of
  // `capacity` elements, not in half of it, is taken: that of an output of such a size, taken
  // when its last reader's backward runs. Outputs sharing such memory must die before it.
  auto needed_from = [&](long long capacity) {
    int from = -1;
    for (int k = 0; k < n; ++k) {
      const long long e = elements(layers[k], batch);
      if (2 * e > capacity && e <= capacity) from = std::max(from, last_consumer[k]);
    }
    return from;
  };

  plan.owner.assign(n, -1);
  plan.offset.assign(n, 0);
  plan.dead_after.assign(n, -1);
  std::vector<long long> capacity(n, 0), used(n, 0);
  std::vector<int> open_after(n, n), tenants_after(n, n);  // for memory that takes later outputs
  const auto& read_until = plan.read_until;
  for (int i = 0; i < n; ++i) {
    if (chain[i] != i) continue;
    // The smallest room left among memories whose own output's forward is over and whose
    // tenants die early enough; never the logits (their own layout, read after backward).
    int host = -1;
    long long host_left = 0, host_offset = 0;
    for (int o = 0; o < i && i < n - 1 && read_until[i] < n; ++o) {
      if (open_after[o] >= i || read_until[i] <= tenants_after[o]) continue;
      const long long offset = (used[o] + kAlign - 1) / kAlign * kAlign;
      const long long left = capacity[o] - offset - elements(layers[i], batch);
      if (left < 0 || (host >= 0 && left >= host_left)) continue;
      if (layout.fits(i, o, offset)) host = o, host_left = left, host_offset = offset;
    }
    if (host >= 0) {
      plan.owner[i] = host;
      plan.offset[i] = host_offset;
      used[host] = host_offset + elements(layers[i], batch);
      plan.dead_after[host] = std::min(plan.dead_after[host], read_until[i]);
      continue;
    }
    plan.owner[i] = i;
    capacity[i] = used[i] = layout.allocate(i);
    plan.dead_after[i] = i == n - 1 ? -1 : read_until[i];
    if (read_until[i] == n && i < n - 1) {  // no backward reads it: it takes later outputs
      open_after[i] = forward_until[i];
      used[i] = 0;
      tenants_after[i] = needed_from(capacity[i]);
    }
  }
  return plan;
}

double training_activation_bytes(const Network& net, int batch, double bytes_per_value) {
  const auto& layers = net.layers;
  std::vector<long long> capacity(layers.size(), 0);
  const MemoryLayout packed{
      .allocate = [&](int i) { return capacity[i] = elements(layers[i], batch); },
      .fits =
          [&](int i, int host, long long offset) {
            return offset + elements(layers[i], batch) <= capacity[host];
          }};
  const TrainingMemoryPlan plan = plan_training_memory(net, batch, packed);
  long long values = 3LL * batch * net.image_size * net.image_size, largest = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (plan.owner[i] == static_cast<int>(i)) values += capacity[i];
    largest = std::max(largest, elements(layers[i], batch));
  }
  // Gradients live mostly in dead outputs' memory; where a larger stage begins in backward
  // (the stem's maxpool and batchnorm), two of the largest size may find none. The same room
  // covers the first step's search buffer for a convolution adding into dx (gpu_conv_fc.cc).
  return bytes_per_value * static_cast<double>(values + 2 * largest);
}

}  // namespace basin::model
