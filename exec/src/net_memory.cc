// Which memory Net's layer outputs and activation gradients live in, and for how long.
//
// Outputs are kept from forward to backward. An output no backward reads (a downsample
// shortcut's batch norm, read only by its block's sum) holds its memory only until that sum has
// run; from then on the memory holds later outputs, side by side at offsets (Backend::view),
// chosen so that all of them are dead in backward before a gradient of that memory's size is
// first taken. During backward, memory whose outputs' last readers' backwards have run is
// lent, as a non-owning view, to the gradients until the next forward rewrites it, as a
// framework's caching allocator hands a freed saved tensor to a gradient. Gradients take memory
// from lent outputs first, then from released gradients, in either case of any shape whose
// memory fits, and only then allocate.
//
// Counted on ResNet-50 at batch 256 in bf16 (tests/exec/net_memory_test.cc), outputs held and
// peak of a training step:
// - shortcut outputs kept whole until backward:                        10.77 GiB, 11.15 GiB
// - released after their sum (each stage's first gradients then found
//   no dead memory of their size and allocated it):                    10.05 GiB, 11.15 GiB
// - holding later outputs as here, block inputs' gradients summed with
//   add (two tensors of each stage's size live at its start):          10.10 GiB, 10.82 GiB
// - as here, with convolutions adding into their input's gradient
//   (Backend::accumulates_conv_dx, as on the GPU):                     10.10 GiB, 10.15 GiB
#include <algorithm>

#include "net_node.h"

namespace basin::exec {

using model::LayerKind;

void Net::place_outputs(const std::vector<int>& chain) {
  const auto& layers = network_.layers;
  const int n = static_cast<int>(nodes_.size());
  // Per chain (the in-place tensors of net.cc), the smallest layer index among the backwards
  // that read it, n for none: conv, batchnorm, fc and pooling read their input; ReLU, pooling
  // and a batchnorm with its ReLU fused read their own output; a sum reads nothing. And the
  // last layer that touches it in forward, writing or reading.
  std::vector<int> read_until(n, n), forward_until(n, -1);
  for (int i = 0; i < n; ++i) {
    const Node& node = nodes_[i];
    forward_until[chain[i]] = std::max(forward_until[chain[i]], i);
    for (int in : layers[i].inputs)
      if (in >= 0) forward_until[chain[in]] = std::max(forward_until[chain[in]], i);
    const int in = layers[i].inputs[0];
    if (in >= 0 && node.kind != LayerKind::relu && node.kind != LayerKind::add)
      read_until[chain[in]] = std::min(read_until[chain[in]], i);
    if (node.kind == LayerKind::relu || node.kind == LayerKind::maxpool ||
        node.kind == LayerKind::avgpool || (node.kind == LayerKind::batchnorm && node.bn.fused_relu))
      read_until[chain[i]] = std::min(read_until[chain[i]], i);
  }

  // Each chain's tensor lives in memory of its own or, where it fits, in the memory of a chain
  // no backward reads (a downsample shortcut's batch norm) once that chain's forward is over,
  // beside other such tenants. A tenant must die in backward before gradients of that memory's
  // size are first needed (`needed_from`), so the memory is whole and dead by then, as it was
  // when it held its first chain alone.
  auto elements = [&](int i) { return nodes_[i].out.elements(); };
  std::vector<int> last_consumer(n, -1);
  for (int i = 0; i < n; ++i)
    for (int in : layers[i].inputs)
      if (in >= 0) last_consumer[in] = std::max(last_consumer[in], i);
  // The backward (layer index) at which the first gradient that fits only in memory of
  // `capacity` elements, not in half of it, is taken: that of a layer output of the size,
  // taken when its last reader's backward runs.
  auto needed_from = [&](long long capacity) {
    int from = -1;
    for (int k = 0; k < n; ++k)
      if (2 * elements(k) > capacity && elements(k) <= capacity) from = std::max(from, last_consumer[k]);
    return from;
  };
  constexpr long long kAlign = 128;  // elements: 256 bytes in 16-bit types
  std::vector<int> owner(n, -1), open_after(n, n), tenants_after(n, n);
  std::vector<long long> used(n, 0);
  dead_after_.assign(n, -1);
  for (int i = 0; i < n; ++i) {
    Node& node = nodes_[i];
    if (chain[i] != i) {
      node.y = nodes_[chain[i]].y;
      owner[i] = owner[chain[i]];
      continue;
    }
    // The logits are read on the host by the loss, so they use the plain layout.
    const Layout layout = i == n - 1 ? Layout::plain : Layout::native;
    int host = -1;
    long long host_left = 0, host_offset = 0;
    for (int o = 0; o < i && i < n - 1 && read_until[i] < n; ++o) {
      if (open_after[o] >= i || read_until[i] <= tenants_after[o]) continue;
      const long long offset = (used[o] + kAlign - 1) / kAlign * kAlign;
      const long long left = nodes_[o].y.capacity - offset - elements(i);
      if (left < 0 || (host >= 0 && left >= host_left)) continue;
      if (backend_->view(nodes_[o].y, node.out, layout, offset).data)
        host = o, host_left = left, host_offset = offset;
    }
    if (host >= 0) {
      node.y = backend_->view(nodes_[host].y, node.out, layout, host_offset);
      owner[i] = host;
      used[host] = host_offset + elements(i);
      // Memory is dead once the backward of the last reader of what it holds has run.
      dead_after_[host] = std::min(dead_after_[host], read_until[i]);
      continue;
    }
    node.y = backend_->alloc(node.out, layout);
    owner[i] = i;
    used[i] = node.y.capacity;
    // Memory holding only what no backward reads is lent from backward's start, and takes
    // tenants once its forward is over. The logits are never lent (callers read them after
    // backward).
    dead_after_[i] = i == n - 1 ? -1 : read_until[i];
    if (read_until[i] == n && i < n - 1) {
      open_after[i] = forward_until[i];
      used[i] = 0;
      tenants_after[i] = needed_from(node.y.capacity);
    }
  }
  for (int o = 0; o < n; ++o)
    if (dead_after_[o] >= 0) activation_memory_.insert(nodes_[o].y.data.get());
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
      if (Tensor v = backend_->view(*it, desc, layout, 0); v.data) best = it, fit = std::move(v);
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
