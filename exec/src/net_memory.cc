// Which memory Net's layer outputs and activation gradients live in, and for how long.
//
// Outputs are kept from forward to backward. During backward, an output whose last reader's
// backward has run (or that no backward reads at all: a downsample shortcut's batch norm, read
// only by its block's sum) is lent, as a non-owning view, to the gradients until the next
// forward rewrites it, as a framework's caching allocator hands a freed saved tensor to a
// gradient. Gradients take memory from lent outputs first, then from released gradients, in
// either case of any shape whose memory fits (Backend::view), and only then allocate.
//
// Why outputs no backward reads are kept rather than taken and released around their forward:
// counted on ResNet-50 at batch 256 (tests/exec/net_memory_test.cc), that takes 0.72 GiB off
// the kept outputs and puts the same 0.72 GiB on the gradients allocated at the start of
// backward, where those outputs were the first memory lent: the peak stays 11.15 GiB.
#include <algorithm>

#include "net_node.h"

namespace basin::exec {

using model::LayerKind;

void Net::plan_memory(const std::vector<int>& root) {
  const auto& layers = network_.layers;
  const int n = static_cast<int>(nodes_.size());
  // Which backward reads each output's storage last (the smallest layer index among its
  // readers): conv, batchnorm, fc and pooling read their input; ReLU, pooling and a batchnorm
  // with its ReLU fused read their own output. A sum reads nothing. The logits are never lent
  // (callers read them after backward).
  dead_after_.assign(n, -1);
  for (int i = 0; i < n; ++i)
    if (root[i] == i && i != n - 1) dead_after_[i] = n;
  auto read_by = [&](int storage_of, int reader) {
    int& d = dead_after_[root[storage_of]];
    if (d >= 0) d = std::min(d, reader);
  };
  for (int i = 0; i < n; ++i) {
    const Node& node = nodes_[i];
    const int in = layers[i].inputs[0];
    if (in >= 0 && node.kind != LayerKind::relu && node.kind != LayerKind::add) read_by(in, i);
    if (node.kind == LayerKind::relu || node.kind == LayerKind::maxpool ||
        node.kind == LayerKind::avgpool || (node.kind == LayerKind::batchnorm && node.bn.fused_relu))
      read_by(i, i);
  }
  for (int r = 0; r < n; ++r)
    if (dead_after_[r] >= 0) activation_memory_.insert(nodes_[r].y.data.get());
}

// i = n: before the first backward, the outputs no backward reads.
void Net::lend_dead_after(int i) {
  // A layer reads only its own and earlier outputs, so only those can die with it.
  const int last = std::min(i, static_cast<int>(nodes_.size()) - 1);
  for (int r = 0; r <= last; ++r)
    if (dead_after_[r] == i) {
      Tensor view = nodes_[r].y;
      view.data = std::shared_ptr<float>(view.data.get(), [](float*) {});  // owns nothing
      lent_.push_back(std::move(view));
    }
}

// The smallest memory the backend can lay the gradient out in (Backend::view), lent outputs
// first.
Tensor Net::take_grad(const TensorDesc& desc, Layout layout) {
  for (auto* pool : {&lent_, &spare_grads_}) {
    auto best = pool->end();
    Tensor fit;
    for (auto it = pool->begin(); it != pool->end(); ++it) {
      if (best != pool->end() && it->capacity >= best->capacity) continue;
      if (Tensor v = backend_->view(*it, desc, layout); v.data) best = it, fit = std::move(v);
    }
    if (best != pool->end()) {
      pool->erase(best);
      return fit;
    }
  }
  return backend_->alloc(desc, layout);
}

// Released only when no other layer's gradient aliases the memory; a lent output goes back to
// the lent ones (its node keeps the memory).
void Net::give_back(Tensor& t) {
  if (t.data && t.data.use_count() == 1)
    (activation_memory_.contains(t.data.get()) ? lent_ : spare_grads_).push_back(std::move(t));
  t = Tensor{};
}

// Adds a gradient contribution to a tensor read by more than one layer (a block's input). The
// first contribution becomes the gradient itself, shared with whoever else holds it (the sum's
// other input); a later one is added in place once nobody else holds it, else into a new tensor.
void Net::accumulate(int producer, const Tensor& part) {
  Tensor& g = grad_of_[producer];
  if (!g.data) {
    g = part;
  } else if (g.data.use_count() == 1) {
    backend_->add(g, part, g);
  } else {
    Tensor sum = take_grad(part.desc, part.layout);
    backend_->add(g, part, sum);
    give_back(g);
    g = std::move(sum);
  }
}

}  // namespace basin::exec
