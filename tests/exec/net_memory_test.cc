// Net's memory plan on the real ResNet graphs, with a backend that computes nothing: it hands out
// one-byte stand-ins for device memory, views them as a GPU's NHWC memory is viewed (any shape of
// as many elements or fewer), records which operation last wrote each piece of memory, and checks
// every read backward makes of an activation. So ResNet-50 at batch 256 runs in milliseconds, and
// the two things lending activation memory to gradients could get wrong are tested where they
// would show: a backward reading an activation that a gradient has overwritten, and gradient
// memory that still grows with the network.
#include <basin/exec.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "../catch.h"
#include "device_double.h"

using namespace basin;
using namespace basin::exec;

namespace {

class Recorder final : public Backend {
 public:
  std::string name() const override { return "memory recorder"; }

  // Each allocation gets addresses of its own, 2 bytes an element (as bf16), never dereferenced.
  Tensor alloc(const TensorDesc& desc, Layout layout) override {
    Tensor t{desc, layout, layout == Layout::plain ? 1 : 0};
    t.capacity = desc.elements();
    const long long bytes = 2 * desc.elements();
    next_address += bytes + 4096;
    t.data = std::shared_ptr<float>(reinterpret_cast<float*>(next_address - bytes),
                                    [this, bytes](float*) { live -= bytes; });
    allocated += bytes;
    live += bytes;
    peak = std::max(peak, live);
    ++allocations;
    return t;
  }
  Tensor view(const Tensor& storage, const TensorDesc& desc, Layout layout,
              long long offset) override {
    if (!storage.data || storage.layout != layout || offset < 0 ||
        desc.elements() > storage.capacity - offset)
      return {};
    Tensor t{desc, layout, storage.format,
             std::shared_ptr<float>(storage.data,
                                    reinterpret_cast<float*>(address(storage) + 2 * offset))};
    t.capacity = storage.capacity - offset;
    return t;
  }
  static long long address(const Tensor& t) { return reinterpret_cast<long long>(t.ptr()); }

  // Forward writes an activation, backward a gradient, each a range of addresses; a backward
  // read of an activation must find what forward wrote there, with no gradient written over
  // any of its bytes since.
  struct Write {
    long long begin, end;
    bool activation;
  };
  void wrote(const Tensor& t, bool activation) {
    writes.push_back({address(t), address(t) + 2 * t.desc.elements(), activation});
  }
  void reads_activation(const Tensor& t, const char* what, int op) {
    const long long begin = address(t), end = begin + 2 * t.desc.elements();
    std::string problem = " was never written";
    for (auto w = writes.rbegin(); w != writes.rend(); ++w) {
      if (w->end <= begin || w->begin >= end) continue;  // elsewhere
      if (!w->activation) {
        problem = " was overwritten by a gradient";
        break;
      }
      if (w->begin == begin && w->end == end) {
        problem.clear();
        break;
      }
      problem = " was overwritten by another activation";
      break;
    }
    if (!problem.empty())
      problems.insert(std::string(what) + " of layer " + std::to_string(op) + problem);
  }

  void write_nchw(const float*, Tensor& dst) override { wrote(dst, true); }
  void read_nchw(const Tensor& src, float* dst) override { std::fill(dst, dst + src.desc.elements(), 0.f); }
  void copy(const Tensor&, Tensor& dst) override { wrote(dst, false); }
  // Forward reads its inputs too: an output placed in memory another output held must not be
  // written before that one's last reader has run.
  void conv_forward(int op, const ConvDesc&, const Tensor& x, const float*, Tensor& y) override {
    reads_activation(x, "conv input (forward)", op);
    wrote(y, true);
  }
  bool accumulates_conv_dx() const override { return true; }  // as the GPU backend
  void conv_backward(int op, const ConvDesc&, const Tensor& x, const float*, const Tensor&,
                     Tensor* dx, float*, bool) override {
    reads_activation(x, "conv input", op);
    if (dx) wrote(*dx, false);
  }
  void batchnorm_forward_training(int op, const BatchNormDesc& d, const Tensor& x, const float*,
                                  const float*, Tensor& y, float*, float*) override {
    reads_activation(x, "batch norm input (forward)", op);
    wrote(y, true);
    if (d.fused_relu) saved[op] = {y};
  }
  void batchnorm_forward_eval(int op, const BatchNormDesc&, const Tensor& x, const float*,
                              const float*, const float*, const float*, Tensor& y) override {
    reads_activation(x, "batch norm input (forward)", op);
    wrote(y, true);
  }
  void batchnorm_backward(int op, const BatchNormDesc& d, const Tensor& x, const float*, Tensor& dy,
                          Tensor& dx, float*, float*) override {
    reads_activation(x, "batch norm input", op);
    if (d.fused_relu) {
      reads_activation(saved.at(op)[0], "batch norm + ReLU output", op);
      wrote(dy, false);  // masked in place, as the GPU backend does
    }
    wrote(dx, false);
  }
  void relu_forward(int op, const Tensor& x, Tensor& y) override {
    reads_activation(x, "ReLU input (forward)", op);
    wrote(y, true);
  }
  void relu_backward(int op, const Tensor& y, const Tensor&, Tensor& dx) override {
    reads_activation(y, "ReLU output", op);
    wrote(dx, false);
  }
  void pool_forward(int op, const PoolDesc&, const Tensor& x, Tensor& y) override {
    reads_activation(x, "pool input (forward)", op);
    wrote(y, true);
    saved[op] = {x, y};  // as cuDNN's pooling backward rereads both
  }
  void pool_backward(int op, const PoolDesc&, const Tensor&, Tensor& dx) override {
    reads_activation(saved.at(op)[0], "pool input", op);
    reads_activation(saved.at(op)[1], "pool output", op);
    wrote(dx, false);
  }
  void fc_forward(int op, const FcDesc&, const Tensor& x, const float*, const float*,
                  Tensor& y) override {
    reads_activation(x, "fc input (forward)", op);
    wrote(y, true);
  }
  void fc_backward(int op, const FcDesc&, const Tensor& x, const float*, const Tensor&, Tensor& dx, float*,
                   float*) override {
    reads_activation(x, "fc input", op);
    wrote(dx, false);
  }
  // A sum runs forward (an activation) and backward (a block input's gradient, summed in).
  bool backward = false;
  void add(const Tensor& a, const Tensor& b, Tensor& y) override {
    if (!backward) {
      reads_activation(a, "sum's main input (forward)", -1);
      reads_activation(b, "sum's shortcut input (forward)", -1);
    }
    wrote(y, !backward);
  }
  double softmax_cross_entropy(const Tensor& logits, const int*, double, Tensor& dlogits, double) override {
    reads_activation(logits, "logits", -1);
    wrote(dlogits, false);
    backward = true;
    return 0;
  }
  void update_running_stats(int, double, float, const float*, const float*, float*, float*) override {}

  long long allocated = 0, allocations = 0;
  long long live = 0, peak = 0;  // bytes held now and at most
  long long next_address = 1 << 20;
  std::vector<Write> writes;  // in order
  std::map<int, std::vector<Tensor>> saved;
  std::set<std::string> problems;
};

// Runs `steps` training steps; returns the bytes of tensors allocated during them.
long long step_bytes(Net& net, Recorder& r, int steps) {
  const TensorDesc image{net.batch(), 3, net.network().image_size, net.network().image_size};
  std::vector<float> pixels(static_cast<size_t>(image.elements()));
  std::vector<int> labels(static_cast<size_t>(net.batch()), 0);
  const long long before = r.allocated;
  for (int s = 0; s < steps; ++s) {
    r.backward = false;
    net.forward(pixels.data(), Mode::training);
    net.loss(labels.data(), net.batch());
    net.backward();
  }
  return r.allocated - before;
}

}  // namespace

TEST_CASE("Gradients reuse dead activations' memory without a backward reading an overwritten one",
          "[exec][memory]") {
  const auto [depth, batch] = GENERATE(std::pair{50, 256}, std::pair{18, 64}, std::pair{101, 32});
  CAPTURE(depth, batch);
  Recorder r;
  Net net(model::resnet(depth), r, batch);
  long long largest = 0, kept = r.live;
  for (const auto& l : net.network().layers)
    largest = std::max(largest, 2LL * batch * l.out_channels * l.out_h * l.out_w);
  // What the model says the kept outputs take: every layer's output except those written in
  // place (a ReLU over a batch norm or a sum, a sum over its main path's batch norm), plus the
  // input image, less the downsample shortcuts' batch norm outputs, which no backward reads:
  // once its sum has run, each one's memory holds outputs of the next stage (half its size),
  // except the last stage's, which stays whole for backward's first gradients.
  const auto& layers = net.network().layers;
  auto bytes = [&](const model::Layer& l) {
    return 2LL * batch * l.out_channels * l.out_h * l.out_w;
  };
  long long expected = 2LL * batch * 3 * net.network().image_size * net.network().image_size;
  long long last_shortcut = 0;
  for (const auto& l : layers) {
    if (l.kind != model::LayerKind::relu && l.kind != model::LayerKind::add) expected += bytes(l);
    if (l.kind == model::LayerKind::add &&
        layers[l.inputs[1]].kind == model::LayerKind::batchnorm) {
      expected -= bytes(layers[l.inputs[1]]);
      last_shortcut = bytes(layers[l.inputs[1]]);
    }
  }
  expected += last_shortcut;
  CHECK(kept == expected);

  const long long first = step_bytes(net, r, 1);
  // At most three activation gradients are live at once (a layer's dy and dx, and a block
  // input's sum), so a step needs at most three of the largest. Before gradients could live in
  // dead activations and in memory of other shapes, ResNet-50's step at batch 256 allocated
  // 10.7 of them (4.04 GiB); before later outputs could live in a shortcut's memory and a
  // convolution could add into its input's gradient, it kept 10.77 GiB and peaked at 11.15.
  INFO("outputs kept " << kept / double(1 << 30) << " GiB; allocated in a step "
                       << first / double(1 << 30) << " GiB; peak " << r.peak / double(1 << 30)
                       << " GiB; largest output " << largest / double(1 << 30) << " GiB");
  CHECK(first <= 3 * largest);
  CHECK(r.peak <= kept + 3 * largest);
  // In a bottleneck network each stage's first gradients find its shortcut's memory dead: only
  // the last stage's first ones (an eighth of the largest output) and the logits' are new.
  if (depth >= 50) CHECK(first < largest / 4);
  CHECK(r.problems.empty());
  for (const auto& p : r.problems) WARN(p);

  // The next steps find everything in place: nothing more is allocated.
  const long long allocations = r.allocations;
  CHECK(step_bytes(net, r, 2) == 0);
  CHECK(r.allocations == allocations);
  CHECK(r.problems.empty());
}

TEST_CASE("The memory check can fail: an activation overwritten before its backward is named", "[exec][memory]") {
  Recorder r;
  Tensor x = r.alloc({2, 8, 4, 4}, Layout::native);
  r.wrote(x, true);
  r.reads_activation(x, "conv input", 3);
  CHECK(r.problems.empty());
  r.wrote(x, false);
  r.reads_activation(x, "conv input", 3);
  CHECK(r.problems == std::set<std::string>{"conv input of layer 3 was overwritten by a gradient"});

  // Another output written over part of it, at an offset, is caught as well.
  r.problems.clear();
  Tensor y = r.alloc({2, 8, 4, 4}, Layout::native);
  r.wrote(y, true);
  r.wrote(r.view(y, {2, 2, 4, 4}, Layout::native, 128), true);
  r.reads_activation(y, "batch norm input", 5);
  CHECK(r.problems ==
        std::set<std::string>{"batch norm input of layer 5 was overwritten by another activation"});
}

#if BASIN_HAVE_DNNL
TEST_CASE("On the CPU backend, padded and unpadded gradients are reused step after step", "[exec][memory]") {
  // Width 12: 12 channels pad to the next block of 8 or 16 in oneDNN's blocked layout, 24 and
  // 48 may not. Neither kind may be allocated again once the first step has made them.
  test::DeviceDouble cpu;
  const auto network = model::resnet({.blocks = {1, 1}, .bottleneck = false, .width = 12,
                                      .image_size = 16, .classes = 5});
  Net net(network, cpu, 2);
  net.init({.seed = 1});
  std::vector<float> pixels(2 * 3 * 16 * 16, 0.5f);
  std::vector<int> labels = {1, 3};
  auto step = [&] {
    net.forward(pixels.data(), Mode::training);
    net.loss(labels.data(), 2);
    net.backward();
  };
  step();
  const long long after_first = cpu.tensor_allocations;
  for (int i = 0; i < 3; ++i) step();
  CHECK(cpu.tensor_allocations == after_first);
}

TEST_CASE("A convolution adding into its input's gradient gives the gradients Net sums itself",
          "[exec][memory]") {
  // The device double runs the CPU's arithmetic either way: with conv_adds_to_dx Net hands the
  // block inputs' gradients to conv_backward (add_to_dx, as on a GPU), else sums them with add;
  // both add the same two tensors, so the gradients agree bit for bit.
  const auto network = model::resnet(
      {.blocks = {2, 1}, .bottleneck = true, .width = 8, .image_size = 16, .classes = 5});
  std::vector<float> pixels(3 * 3 * 16 * 16);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<float>(i % 17) / 8 - 1;
  std::vector<int> labels = {1, 3, 4};
  auto gradients = [&](bool conv_adds) {
    test::DeviceDouble device;
    device.conv_adds_to_dx = conv_adds;
    Net net(network, device, 3);
    net.init({.seed = 2});
    net.forward(pixels.data(), Mode::training);
    net.loss(labels.data(), 3);
    net.backward();
    return net.to_host(net.grads());
  };
  const auto summed_by_net = gradients(false), summed_by_conv = gradients(true);
  REQUIRE(summed_by_net.size() == summed_by_conv.size());
  CHECK(summed_by_net == summed_by_conv);
  CHECK(std::any_of(summed_by_net.begin(), summed_by_net.end(), [](float g) { return g != 0; }));
}
#endif
