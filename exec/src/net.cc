// A ResNet as executable layers: the flat parameter, gradient and buffer arrays, and one
// training step's forward, loss and backward over the model's explicit residual graph
// (model::Layer::inputs).
//
// Memory: which memory outputs and gradients live in, and for how long, is net_memory.cc's.
// ReLUs and sums overwrite an input nothing else needs; gradients live only while needed.
#include <basin/exec.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "net_node.h"

namespace basin::exec {

using model::LayerKind;

Net::Net(model::Network network, Backend& backend, int batch)
    : network_(std::move(network)), backend_(&backend), batch_(batch) {
  if (batch < 1)
    throw std::invalid_argument("batch must be at least 1, got " + std::to_string(batch));
  const auto& layers = network_.layers;
  const int n = static_cast<int>(layers.size());
  nodes_.resize(n);
  auto out_desc = [&](const model::Layer& l) {
    return TensorDesc{batch, l.out_channels, l.out_h, l.out_w};
  };
  auto in_desc = [&](const model::Layer& l) {
    return TensorDesc{batch, l.in_channels, l.in_h, l.in_w};
  };
  const TensorDesc image{batch, 3, network_.image_size, network_.image_size};

  for (int i = 0; i < n; ++i) {
    const model::Layer& l = layers[i];
    Node& node = nodes_[i];
    node.kind = l.kind;
    node.out = out_desc(l);
    if (l.inputs.empty() || (l.kind == LayerKind::add) != (l.inputs.size() == 2))
      throw std::invalid_argument("layer " + l.name + " has " + std::to_string(l.inputs.size()) +
                                  " inputs, expected " + (l.kind == LayerKind::add ? "2" : "1"));
    for (int in : l.inputs) {
      if (in < -1 || in >= i)
        throw std::invalid_argument("layer " + l.name + " reads layer " + std::to_string(in) +
                                    ", which does not come before it");
      const TensorDesc src = in < 0 ? image : nodes_[in].out;
      if (!(src == in_desc(l)))
        throw std::invalid_argument("layer " + l.name + " expects a different input shape");
      if (in >= 0) ++nodes_[in].consumers;
    }
    switch (l.kind) {
      case LayerKind::conv:
        node.conv = {in_desc(l), node.out, l.kernel, l.stride, l.padding};
        break;
      case LayerKind::batchnorm:
        node.bn = {node.out};
        break;
      case LayerKind::maxpool:
        node.pool = {PoolKind::max, in_desc(l), node.out, l.kernel, l.stride, l.padding};
        break;
      case LayerKind::avgpool:
        if (l.in_h != l.in_w) throw std::invalid_argument("avgpool needs a square input");
        node.pool = {PoolKind::average, in_desc(l), node.out, l.in_h, 1, 0};
        break;
      case LayerKind::fc:
        node.fc = {in_desc(l), node.out};
        break;
      case LayerKind::relu:
      case LayerKind::add:
        break;
    }
  }
  if (n == 0 || layers.back().kind != LayerKind::fc)
    throw std::invalid_argument("network " + network_.name + " must end with an fc layer");
  place_outputs();
  input_ = backend.alloc(image, Layout::plain);

  // Parameters in backward order: the last layer's first.
  std::vector<bool> last_bn(n, false);
  for (const auto& l : layers)
    if (l.kind == LayerKind::add)
      last_bn[l.inputs[0]] = layers[l.inputs[0]].kind == LayerKind::batchnorm;
  long long offset = 0, buffer_offset = 0;
  int step = 0;
  for (int i = n - 1; i >= 0; --i, ++step) {
    const model::Layer& l = layers[i];
    Node& node = nodes_[i];
    auto add_param = [&](const char* suffix, long long count, bool no_decay) {
      param_info_.push_back(
          {l.name + suffix, i, offset, count, step, no_decay,
           l.kind == LayerKind::batchnorm && last_bn[i] && std::string(suffix) == ".weight"});
      offset += count;
      return offset - count;
    };
    auto add_buffer = [&](const char* suffix, long long count) {
      buffer_info_.push_back({l.name + suffix, i, buffer_offset, count});
      buffer_offset += count;
      return buffer_offset - count;
    };
    switch (l.kind) {
      case LayerKind::conv:
        node.weight = add_param(".weight", l.params, false);
        break;
      case LayerKind::batchnorm:
        node.weight = add_param(".weight", l.out_channels, true);
        node.bias = add_param(".bias", l.out_channels, true);
        node.mean = add_buffer(".running_mean", l.out_channels);
        node.variance = add_buffer(".running_var", l.out_channels);
        break;
      case LayerKind::fc:
        node.weight =
            add_param(".weight", 1LL * l.in_channels * l.in_h * l.in_w * l.out_channels, false);
        node.bias = add_param(".bias", l.out_channels, true);
        break;
      default:
        break;
    }
  }
  if (offset != network_.params())
    throw std::logic_error("parameter layout disagrees with the model's count");
  param_count_ = offset;
  buffer_count_ = buffer_offset;
  params_ = backend.alloc_flat(offset);
  grads_ = backend.alloc_flat(offset);
  buffers_ = backend.alloc_flat(buffer_offset);
  int max_channels = 1;
  for (const auto& l : layers)
    if (l.kind == LayerKind::batchnorm) max_channels = std::max(max_channels, l.out_channels);
  bn_stats_ = backend.alloc_flat(2LL * max_channels);
  grad_of_.resize(n);
}

std::vector<float> Net::to_host(std::span<const float> flat) const {
  std::vector<float> host(flat.size());
  backend_->flat_to_host(flat.data(), host.data(), static_cast<long long>(flat.size()));
  return host;
}

void Net::from_host(std::span<const float> host, std::span<float> flat) {
  if (host.size() != flat.size())
    throw std::invalid_argument("from_host: " + std::to_string(host.size()) + " floats into " +
                                std::to_string(flat.size()));
  backend_->flat_from_host(host.data(), flat.data(), static_cast<long long>(flat.size()));
}

Net::~Net() = default;

const ParamInfo& Net::param(const std::string& name) const {
  for (const auto& p : param_info_)
    if (p.name == name) return p;
  throw std::out_of_range("no parameter " + name + " in " + network_.name);
}

void Net::forward(const float* images, Mode mode) {
  backend_->write_nchw(images, input_);
  run_layers(mode);
}

void Net::forward(const data::Batch& raw, const data::Normalization& norm, Mode mode) {
  backend_->stage_input(raw, norm, input_);
  run_layers(mode);
}

void Net::forward_staged(Mode mode) { run_layers(mode); }

void Net::run_layers(Mode mode) {
  // Every forward, whatever fed its input: the parameters may have changed since the last one.
  backend_->prepare_weights(params_.get(), param_count_);
  const auto& layers = network_.layers;
  float* p = params_.get();
  for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
    Node& node = nodes_[i];
    const auto& inputs = layers[i].inputs;
    const Tensor& x = inputs[0] < 0 ? input_ : nodes_[inputs[0]].y;
    switch (node.kind) {
      case LayerKind::conv:
        backend_->conv_forward(i, node.conv, x, p + node.weight, node.y);
        break;
      case LayerKind::batchnorm: {
        float* mean = buffers_.get() + node.mean;
        float* var = buffers_.get() + node.variance;
        if (mode == Mode::eval) {
          backend_->batchnorm_forward_eval(i, node.bn, x, p + node.weight, p + node.bias, mean, var,
                                           node.y);
          break;
        }
        const int c = node.out.c;
        float* batch_mean = bn_stats_.get();
        float* batch_var = bn_stats_.get() + c;
        backend_->batchnorm_forward_training(i, node.bn, x, p + node.weight, p + node.bias, node.y,
                                             batch_mean, batch_var);
        // torch.nn.BatchNorm2d: running stats take the unbiased variance of the batch.
        const double count = 1.0 * node.out.n * node.out.h * node.out.w;
        backend_->update_running_stats(c, count, bn_momentum, batch_mean, batch_var, mean, var);
        break;
      }
      case LayerKind::relu:
        if (!node.fused && !node.forward_by_sum) backend_->relu_forward(i, x, node.y);
        break;
      case LayerKind::maxpool:
      case LayerKind::avgpool:
        backend_->pool_forward(i, node.pool, x, node.y);
        break;
      case LayerKind::fc:
        backend_->fc_forward(i, node.fc, x, p + node.weight, p + node.bias, node.y);
        break;
      case LayerKind::add:
        if (node.relu_after >= 0)
          backend_->add_relu(node.relu_after, x, nodes_[inputs[1]].y, node.y);
        else
          backend_->add(x, nodes_[inputs[1]].y, node.y);
        break;
    }
  }
  trained_forward_ = mode == Mode::training;
  forward_spent_ = false;
  have_loss_ = false;
}

std::vector<float> Net::logits() const {
  std::vector<float> out(nodes_.back().out.elements());
  backend_->read_nchw(nodes_.back().y, out.data());
  return out;
}

double Net::loss(const int* labels, double divisor, double grad_scale) {
  Node& last = nodes_.back();
  for (auto& g : grad_of_) give_back(g);
  lent_.clear();  // a forward has rewritten them (or a backward was cut short)
  grad_of_.back() = take_grad(last.out, Layout::plain);
  const double l =
      backend_->softmax_cross_entropy(last.y, labels, divisor, grad_of_.back(), grad_scale);
  have_loss_ = true;
  return l;
}

void Net::backward(const std::function<void(int step, long long ready)>& on_ready) {
  if (!have_loss_) throw std::logic_error("backward() needs loss() after a forward");
  if (forward_spent_)
    throw std::logic_error("backward() again after one forward: backward lends the forward's "
                           "memory to gradients, so run forward again");
  if (!trained_forward_)
    throw std::logic_error("backward() needs a training-mode forward (batch statistics)");
  forward_spent_ = true;
  const auto& layers = network_.layers;
  const float* p = params_.get();
  float* g = grads_.get();
  const int n = static_cast<int>(nodes_.size());
  lent_.clear();
  lend_dead_after(n);  // outputs no backward reads
  for (int i = n - 1, step = 0; i >= 0; --i, ++step) {
    Node& node = nodes_[i];
    const auto& inputs = layers[i].inputs;
    Tensor dy = std::move(grad_of_[i]);
    grad_of_[i] = Tensor{};
    if (!dy.data) throw std::logic_error("no gradient reached layer " + layers[i].name);
    const int in = inputs[0];
    const Tensor& x = in < 0 ? input_ : nodes_[in].y;
    // The gradient of this layer's input goes straight into the producer's gradient when this
    // layer is its only reader, else into a scratch tensor that is then summed in.
    const bool direct = in >= 0 && nodes_[in].consumers == 1;
    // Or, a convolution whose input's gradient has been started by another reader and is held
    // by nothing else, adds into it, where the backend does that in the same pass.
    const bool add_into = node.kind == LayerKind::conv && in >= 0 && !direct && grad_of_[in].data &&
                          grad_of_[in].data.use_count() == 1 && backend_->accumulates_conv_dx();
    Tensor dx;
    // ReLU's backward runs in place when nothing else holds its output gradient; add passes
    // dy itself on.
    const bool in_place =
        (node.kind == LayerKind::relu && (dy.data.use_count() == 1 || node.fused)) ||
        node.kind == LayerKind::add;
    if (in >= 0) dx = in_place ? dy : add_into ? grad_of_[in] : take_grad(x.desc, x.layout);
    switch (node.kind) {
      case LayerKind::conv:
        backend_->conv_backward(i, node.conv, x, p + node.weight, dy, in < 0 ? nullptr : &dx,
                                g + node.weight, add_into);
        break;
      case LayerKind::batchnorm:
        if (node.bn.fused_relu && dy.data.use_count() > 1) {
          // The backend may mask dy in place (Backend::batchnorm_backward): not a shared one.
          Tensor own = take_grad(dy.desc, dy.layout);
          backend_->copy(dy, own);
          give_back(dy);
          dy = std::move(own);
        }
        backend_->batchnorm_backward(i, node.bn, x, p + node.weight, dy, dx, g + node.weight,
                                     g + node.bias);
        break;
      case LayerKind::relu:  // a fused one passes dy on; its batchnorm applies the mask
        if (!node.fused) backend_->relu_backward(i, node.y, dy, dx);
        break;
      case LayerKind::maxpool:
      case LayerKind::avgpool:
        backend_->pool_backward(i, node.pool, dy, dx);
        break;
      case LayerKind::fc:
        backend_->fc_backward(i, node.fc, x, p + node.weight, dy, dx, g + node.weight,
                              g + node.bias);
        break;
      case LayerKind::add: {
        // Both inputs receive dy unchanged: the shortcut's gradient shares it (accumulate sums
        // into it only once the main path has let go of it).
        accumulate(inputs[1], dy);
        break;
      }
    }
    if (add_into) {
      dx = Tensor{};
    } else if (in >= 0) {
      if (direct && !grad_of_[in].data) {
        grad_of_[in] = std::move(dx);
      } else {
        accumulate(in, dx);
        give_back(dx);
      }
    }
    give_back(dy);
    lend_dead_after(i);
    if (on_ready && node.weight >= 0) {
      const long long ready =
          node.bias >= 0 ? node.bias + layers[i].out_channels : node.weight + layers[i].params;
      on_ready(step, ready);
    }
  }
  lent_.clear();
  have_loss_ = false;
}

}  // namespace basin::exec
