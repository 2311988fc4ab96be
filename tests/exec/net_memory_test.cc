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

  Tensor alloc(const TensorDesc& desc, Layout layout) override {
    Tensor t{desc, layout, layout == Layout::plain ? 1 : 0};
    t.capacity = desc.elements();
    const long long bytes = 2 * desc.elements();  // as bf16
    t.data = std::shared_ptr<float>(reinterpret_cast<float*>(new char[1]), [this, bytes](float* p) {
      live -= bytes;
      delete[] reinterpret_cast<char*>(p);
    });
    allocated += bytes;
    live += bytes;
    peak = std::max(peak, live);
    ++allocations;
    return t;
  }
  Tensor view(const Tensor& storage, const TensorDesc& desc, Layout layout) override {
    if (!storage.data || storage.layout != layout || desc.elements() > storage.capacity) return {};
    Tensor t{desc, layout, storage.format, storage.data};
    t.capacity = storage.capacity;
    return t;
  }

  // Forward writes an activation, backward a gradient; backward reads of activations must find
  // what forward wrote.
  void wrote(const Tensor& t, bool activation) { last_write[t.ptr()] = activation; }
  void reads_activation(const Tensor& t, const char* what, int op) {
    const auto it = last_write.find(t.ptr());
    if (it == last_write.end() || !it->second)
      problems.insert(std::string(what) + " of layer " + std::to_string(op) +
                      (it == last_write.end() ? " was never written" : " was overwritten by a gradient"));
  }

  void write_nchw(const float*, Tensor& dst) override { wrote(dst, true); }
  void read_nchw(const Tensor& src, float* dst) override { std::fill(dst, dst + src.desc.elements(), 0.f); }
  void copy(const Tensor&, Tensor& dst) override { wrote(dst, false); }
  void conv_forward(int, const ConvDesc&, const Tensor&, const float*, Tensor& y) override { wrote(y, true); }
  void conv_backward(int op, const ConvDesc&, const Tensor& x, const float*, const Tensor&, Tensor* dx,
                     float*) override {
    reads_activation(x, "conv input", op);
    if (dx) wrote(*dx, false);
  }
  void batchnorm_forward_training(int op, const BatchNormDesc& d, const Tensor&, const float*, const float*,
                                  Tensor& y, float*, float*) override {
    wrote(y, true);
    if (d.fused_relu) saved[op] = {y};
  }
  void batchnorm_forward_eval(int, const BatchNormDesc&, const Tensor&, const float*, const float*,
                              const float*, const float*, Tensor& y) override {
    wrote(y, true);
  }
  void batchnorm_backward(int op, const BatchNormDesc& d, const Tensor& x, const float*, const Tensor&,
                          Tensor& dx, float*, float*) override {
    reads_activation(x, "batch norm input", op);
    if (d.fused_relu) reads_activation(saved.at(op)[0], "batch norm + ReLU output", op);
    wrote(dx, false);
  }
  void relu_forward(int, const Tensor&, Tensor& y) override { wrote(y, true); }
  void relu_backward(int op, const Tensor& y, const Tensor&, Tensor& dx) override {
    reads_activation(y, "ReLU output", op);
    wrote(dx, false);
  }
  void pool_forward(int op, const PoolDesc&, const Tensor& x, Tensor& y) override {
    wrote(y, true);
    saved[op] = {x, y};  // as cuDNN's pooling backward rereads both
  }
  void pool_backward(int op, const PoolDesc&, const Tensor&, Tensor& dx) override {
    reads_activation(saved.at(op)[0], "pool input", op);
    reads_activation(saved.at(op)[1], "pool output", op);
    wrote(dx, false);
  }
  void fc_forward(int, const FcDesc&, const Tensor&, const float*, const float*, Tensor& y) override {
    wrote(y, true);
  }
  void fc_backward(int op, const FcDesc&, const Tensor& x, const float*, const Tensor&, Tensor& dx, float*,
                   float*) override {
    reads_activation(x, "fc input", op);
    wrote(dx, false);
  }
  // A sum runs forward (an activation) and backward (a block input's gradient, summed in).
  bool backward = false;
  void add(const Tensor&, const Tensor&, Tensor& y) override { wrote(y, !backward); }
  double softmax_cross_entropy(const Tensor& logits, const int*, double, Tensor& dlogits, double) override {
    reads_activation(logits, "logits", -1);
    wrote(dlogits, false);
    backward = true;
    return 0;
  }
  void update_running_stats(int, double, float, const float*, const float*, float*, float*) override {}

  long long allocated = 0, allocations = 0;
  long long live = 0, peak = 0;  // bytes held now and at most
  std::map<const float*, bool> last_write;  // memory -> last written by forward (true) or backward
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
  // input image.
  long long expected = 2LL * batch * 3 * net.network().image_size * net.network().image_size;
  for (const auto& l : net.network().layers)
    if (l.kind != model::LayerKind::relu && l.kind != model::LayerKind::add)
      expected += 2LL * batch * l.out_channels * l.out_h * l.out_w;
  CHECK(kept == expected);

  const long long first = step_bytes(net, r, 1);
  // At most three activation gradients are live at once (a layer's dy and dx, and a block
  // input's sum), so a step needs at most three of the largest; before gradients could live in dead activations and in memory of other shapes, ResNet-50's
  // step at batch 256 allocated 10.7 of them (4.04 GiB).
  INFO("outputs kept " << kept / double(1 << 30) << " GiB; allocated in a step "
                       << first / double(1 << 30) << " GiB; peak " << r.peak / double(1 << 30)
                       << " GiB; largest output " << largest / double(1 << 30) << " GiB");
  CHECK(first <= 3 * largest);
  CHECK(r.peak <= kept + 3 * largest);
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
#endif
