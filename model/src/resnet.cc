// ResNet-18/34/50/101/152 as torchvision builds them (He et al. 2016; v1.5 bottlenecks with the
// stride on the 3x3 conv), expanded into a flat layer list with shapes, parameters and FLOPs.
//
// Why a hand-written expansion rather than a file exported from PyTorch: the simulator must run
// on machines without Python or PyTorch, and for any depth, image size and class count. The
// tests hold the result against torchvision's published numbers and a per-layer dump of
// torchvision's own ResNet-50 (tests/model/fixtures).
#include <basin/model.h>

#include <stdexcept>
#include <utility>

namespace basin::model {
namespace {

// Walks the network in forward order, tracking the activation shape, so each layer is described
// by what it does (out channels, kernel, stride) and its input shape comes from the one before.
struct Builder {
  Network net;
  std::string stage;        // block of the layers pushed now, see Layer::stage
  int c = 3, h = 0, w = 0;  // current activation shape
  int producer = -1;        // index of the layer that made it, -1 for the input image

  void push(Layer l) {
    l.activation_bytes = 4.0 * l.out_channels * l.out_h * l.out_w;
    l.stage = stage;
    if (l.inputs.empty()) l.inputs = {producer};
    producer = static_cast<int>(net.layers.size());
    net.layers.push_back(std::move(l));
  }
  static int out_size(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

  void conv(const std::string& name, int out, int k, int stride, int pad) {
    Layer l{name, LayerKind::conv, c, out, k, stride, pad, h, w};
    l.out_h = out_size(h, k, stride, pad);
    l.out_w = out_size(w, k, stride, pad);
    l.params = 1LL * c * out * k * k;  // no bias: the batchnorm after it would cancel one
    l.forward_flops = 2.0 * c * k * k * out * l.out_h * l.out_w;
    c = out, h = l.out_h, w = l.out_w;
    push(std::move(l));
  }
  void elementwise(const std::string& name, LayerKind kind, long long params = 0) {
    Layer l{name, kind, c, c, 0, 1, 0, h, w, h, w};
    l.params = params;
    l.forward_flops = 1.0 * c * h * w;
    push(std::move(l));
  }
  void bn(const std::string& name) { elementwise(name, LayerKind::batchnorm, 2LL * c); }
  void relu(const std::string& name) { elementwise(name, LayerKind::relu); }
  void add(const std::string& name, int main_path, int shortcut) {
    Layer l{name, LayerKind::add, c, c, 0, 1, 0, h, w, h, w};
    l.forward_flops = 1.0 * c * h * w;
    l.inputs = {main_path, shortcut};
    push(std::move(l));
  }
  void maxpool(const std::string& name, int k, int stride, int pad) {
    Layer l{name, LayerKind::maxpool, c, c, k, stride, pad, h, w};
    l.out_h = out_size(h, k, stride, pad);
    l.out_w = out_size(w, k, stride, pad);
    l.forward_flops = 1.0 * c * l.out_h * l.out_w * k * k;
    h = l.out_h, w = l.out_w;
    push(std::move(l));
  }
  // torchvision's AdaptiveAvgPool2d((1, 1)): one window covering whatever layer4 left.
  void avgpool(const std::string& name) {
    Layer l{name, LayerKind::avgpool, c, c, h, 1, 0, h, w, 1, 1};
    l.forward_flops = 1.0 * c * h * w;
    h = w = 1;
    push(std::move(l));
  }
  void fc(const std::string& name, int out) {
    Layer l{name, LayerKind::fc, c, out, 1, 1, 0, 1, 1, 1, 1};
    l.params = 1LL * c * out + out;
    l.forward_flops = 2.0 * c * out;
    c = out;
    push(std::move(l));
  }

  // torchvision BasicBlock (two 3x3) or Bottleneck (1x1, 3x3 with the stride, 1x1 x4). The
  // projection shortcut comes after the main path, where torchvision's forward() calls it.
  void block(const std::string& p, int width, int stride, bool bottleneck) {
    stage = p;
    const int in = c, in_h = h, in_w = w, block_input = producer;
    const int out = bottleneck ? width * 4 : width;
    if (bottleneck) {
      conv(p + ".conv1", width, 1, 1, 0), bn(p + ".bn1"), relu(p + ".relu1");
      conv(p + ".conv2", width, 3, stride, 1), bn(p + ".bn2"), relu(p + ".relu2");
      conv(p + ".conv3", out, 1, 1, 0), bn(p + ".bn3");
    } else {
      conv(p + ".conv1", width, 3, stride, 1), bn(p + ".bn1"), relu(p + ".relu1");
      conv(p + ".conv2", width, 3, 1, 1), bn(p + ".bn2");
    }
    const int main_path = producer;
    int shortcut = block_input;
    if (stride != 1 || in != out) {  // the shortcut reads the block's input, not the main path's
      const int main_c = c, main_h = h, main_w = w;
      c = in, h = in_h, w = in_w, producer = block_input;
      conv(p + ".downsample.0", out, 1, stride, 0), bn(p + ".downsample.1");
      shortcut = producer;
      c = main_c, h = main_h, w = main_w;
    }
    // BasicBlock has only two ReLUs; naming the last one relu3 in both kinds keeps "the ReLU
    // after the sum" findable without knowing the block kind.
    add(p + ".add", main_path, shortcut), relu(p + ".relu3");
  }
};

}  // namespace

const char* to_string(LayerKind k) {
  switch (k) {
    case LayerKind::conv: return "conv";
    case LayerKind::batchnorm: return "batchnorm";
    case LayerKind::relu: return "relu";
    case LayerKind::maxpool: return "maxpool";
    case LayerKind::avgpool: return "avgpool";
    case LayerKind::fc: return "fc";
    case LayerKind::add: return "add";
  }
  return "?";
}

long long Network::params() const {
  long long n = 0;
  for (const auto& l : layers) n += l.params;
  return n;
}

double Network::forward_flops() const {
  double f = 0;
  for (const auto& l : layers) f += l.forward_flops;
  return f;
}

double backward_flops(const Layer& layer) {
  return (layer.has_params() ? 2.0 : 1.0) * layer.forward_flops;
}

double backward_flops(const Network& net) {
  double f = 0;
  for (const auto& l : net.layers) f += backward_flops(l);
  return f;
}

const Layer* find_layer(const Network& net, std::string_view name) {
  for (const auto& l : net.layers)
    if (l.name == name) return &l;
  return nullptr;
}

namespace {

Network build(const ResNetShape& shape, std::string name) {
  const int image_size = shape.image_size, classes = shape.classes;
  if (image_size < 1)
    throw std::invalid_argument("image size must be at least 1 pixel, got " +
                                std::to_string(image_size));
  if (classes < 1)
    throw std::invalid_argument("classes must be at least 1, got " + std::to_string(classes));

  if (shape.blocks.empty() || shape.blocks.size() > 4)
    throw std::invalid_argument("a ResNet has 1 to 4 stages, got " +
                                std::to_string(shape.blocks.size()));
  for (int n : shape.blocks)
    if (n < 1) throw std::invalid_argument("every ResNet stage needs a block, got " + std::to_string(n));
  if (shape.width < 1)
    throw std::invalid_argument("ResNet width must be at least 1, got " + std::to_string(shape.width));

  const int width = shape.width;
  Builder b;
  b.net.name = std::move(name);
  b.net.image_size = image_size;
  b.net.classes = classes;
  b.h = b.w = image_size;
  b.stage = "conv1";
  b.conv("conv1", width, 7, 2, 3), b.bn("bn1"), b.relu("relu");
  b.maxpool("maxpool", 3, 2, 1);
  // Stages double the width and halve the resolution; layer1 keeps the maxpool's resolution.
  for (int stage = 0; stage < static_cast<int>(shape.blocks.size()); ++stage)
    for (int i = 0; i < shape.blocks[stage]; ++i)
      b.block("layer" + std::to_string(stage + 1) + "." + std::to_string(i), width << stage,
              i == 0 && stage > 0 ? 2 : 1, shape.bottleneck);
  b.stage = "fc";
  b.avgpool("avgpool");
  b.fc("fc", classes);
  return std::move(b.net);
}

}  // namespace

Network resnet(int depth, int image_size, int classes) {
  // Blocks per stage (He et al. 2016, table 1).
  ResNetShape shape{.image_size = image_size, .classes = classes};
  switch (depth) {
    case 18: shape.blocks = {2, 2, 2, 2}, shape.bottleneck = false; break;
    case 34: shape.blocks = {3, 4, 6, 3}, shape.bottleneck = false; break;
    case 50: shape.blocks = {3, 4, 6, 3}, shape.bottleneck = true; break;
    case 101: shape.blocks = {3, 4, 23, 3}, shape.bottleneck = true; break;
    case 152: shape.blocks = {3, 8, 36, 3}, shape.bottleneck = true; break;
    default:
      throw std::invalid_argument("ResNet depth must be 18, 34, 50, 101 or 152, got " +
                                  std::to_string(depth));
  }
  return build(shape, "resnet" + std::to_string(depth));
}

Network resnet(const ResNetShape& shape) { return build(shape, "resnet-custom"); }

std::vector<std::string> network_names() {
  return {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"};
}

Network network_by_name(std::string_view name, int image_size, int classes) {
  for (int depth : {18, 34, 50, 101, 152})
    if (name == "resnet" + std::to_string(depth)) return resnet(depth, image_size, classes);
  // Worded to follow "expected" in the InputError the command line wraps it in.
  const auto names = network_names();
  std::string known;
  for (size_t i = 0; i < names.size(); ++i)
    known += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  throw std::invalid_argument("a network named " + known + ", got '" + std::string(name) + "'");
}

}  // namespace basin::model
