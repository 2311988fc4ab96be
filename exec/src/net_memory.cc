// Which memory Net's layer outputs and activation gradients live in, and for how long.
//
// Where outputs live is model::plan_training_memory's plan (model/src/memory_plan.cc), which
// the simulator sizes memory by too; here it is applied with the backend's memory (alloc, and
// Backend::view for what fits where). Outputs are kept from forward to backward. An output no
// backward reads (a downsample shortcut's batch norm, read only by its block's sum) holds its
// memory only until that sum has run; from then on the memory holds later outputs, side by side
// at offsets, chosen so that all of them are dead in backward before a gradient of that memory's
// size is first taken. During backward, memory whose outputs' last readers' backwards have run is
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
#include <basin/memory_plan.h>

#include <algorithm>

#include "net_node.h"

namespace basin::exec {

using model::LayerKind;

void Net::place_outputs() {
  const auto& layers = network_.layers;
  const int n = static_cast<int>(nodes_.size());
  // The logits are read on the host by the loss, so they use the plain layout.
  auto layout_of = [&](int i) { return i == n - 1 ? Layout::plain : Layout::native; };
  const model::MemoryLayout backend_layout{
      .allocate =
          [&](int i) {
            nodes_[i].y = backend_->alloc(nodes_[i].out, layout_of(i));
            return nodes_[i].y.capacity;
          },
      .fits =
          [&](int i, int host, long long offset) {
            return backend_->view(nodes_[host].y, nodes_[i].out, layout_of(i), offset).data !=
                   nullptr;
          }};
  const model::TrainingMemoryPlan plan =
      model::plan_training_memory(network_, batch_, backend_layout);
  for (int i = 0; i < n; ++i) {
    Node& node = nodes_[i];
    const int first = plan.chain[i];
    if (first != i) {
      node.y = nodes_[first].y;
      // A ReLU over a batchnorm's output is done by the batchnorm, in the same pass; over a
      // sum, its forward is done by the sum.
      const int src = layers[i].inputs[0];
      if (node.kind == LayerKind::relu && plan.fused_relu[src])
        node.fused = nodes_[src].bn.fused_relu = true;
      if (node.kind == LayerKind::relu && nodes_[src].kind == LayerKind::add) {
        nodes_[src].relu_after = i;
        node.forward_by_sum = true;
      }
    } else if (plan.owner[i] != i) {
      // Its own elements only: the memory past them may hold another output.
      node.y = backend_->view(nodes_[plan.owner[i]].y, node.out, layout_of(i), plan.offset[i]);
      node.y.capacity = std::min(node.y.capacity, node.out.elements());
    }
  }
  dies_after_.assign(n + 1, {});
  for (int o = 0; o < n; ++o)
    if (plan.dead_after[o] >= 0) {
      dies_after_[plan.dead_after[o]].push_back(o);
      activation_memory_.insert(nodes_[o].y.data.get());
    }
}

// i = n: before the first backward, the outputs no backward reads.
void Net::lend_dead_after(int i) {
  for (int owner : dies_after_[i]) {
    Tensor view = nodes_[owner].y;
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
      if (it->capacity < desc.elements()) continue;  // too small in any layout
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
