// basin model: the networks basin trains and simulates, as one layer list.
//
// The simulator takes each layer's parameters, FLOPs and activation size from here, and the
// executor builds its network from the same list, so the two never disagree about what ResNet-50
// is. Layouts and names follow torchvision (ResNet v1.5: stride on the bottleneck's 3x3 conv),
// so gradients and parameter counts can be checked against PyTorch by name.
//
// Plain structs and free functions on purpose: a network is data that both sides read, not an
// object with behaviour, and a flat list in forward order is what a simulator walks (backward is
// the same list reversed).
//
// Conventions, all per image and fp32:
//   FLOPs     a multiply-add counts as 2 FLOPs.
//               conv:      2 * Cin/groups * k*k * Cout * Hout * Wout   (basin has no grouped
//                          convs, so groups = 1)
//               fc:        2 * in * out (the bias add is not counted)
//               batchnorm, relu, add: 1 per output element
//               maxpool:   1 per window element read, k*k per output element
//               avgpool:   1 per input element (the sum; the one divide per output is not counted)
//             Published ResNet "GFLOPs" (torchvision's 4.09 for ResNet-50) count multiply-adds
//             of convs and fc only: compare them to (conv + fc forward_flops) / 2.
//   backward  backward_flops(layer) = 2 * forward for a layer with parameters (gradient of the
//             input plus gradient of the weights, each as costly as the forward), 1 * forward for
//             one without (batchnorm has parameters, so it counts 2x). The stem conv needs no
//             input gradient and frameworks skip it, but it is counted anyway: that overstates
//             backward by 1.4% for ResNet-50 (3.3% for ResNet-18, under 1% from ResNet-101 up),
//             and one rule for every layer keeps simulated and measured layers comparable.
//   activation_bytes  the layer's output tensor: out_channels * out_h * out_w * 4.
//   params    trainable parameters only. Convs have no bias (a batchnorm follows each one);
//             batchnorm has gamma and beta (its running mean and variance are buffers, not
//             parameters); fc has weights and bias.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace basin::model {

enum class LayerKind { conv, batchnorm, relu, maxpool, avgpool, fc, add };
const char* to_string(LayerKind k);

struct Layer {
  // Layers with parameters carry torchvision's module name exactly ("conv1", "layer1.0.conv2",
  // "layer1.0.downsample.0", "fc"), so name + ".weight" is a state_dict key. Operations that
  // torchvision does not hold as a module of their own get unique names within their block:
  // a block's three ReLUs ("layer1.0.relu1" .. "relu3", one reused `relu` module in torchvision)
  // and its residual sum ("layer1.0.add").
  std::string name;
  LayerKind kind = LayerKind::conv;
  int in_channels = 0, out_channels = 0;
  int kernel = 0, stride = 1, padding = 0;  // 0, 1, 0 for layers without a window
  int in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  long long params = 0;
  double forward_flops = 0;     // per image, see the conventions above
  double activation_bytes = 0;  // output elements * 4 bytes, per image
  bool has_params() const { return params > 0; }
  // The torchvision block the layer belongs to ("layer3.5"); the stem (conv1, bn1, relu,
  // maxpool) is "conv1" and the head (avgpool, fc) is "fc", the names He et al.'s table 1 and
  // torchvision give those parts. Lets the executor and reports group layers by block.
  std::string stage;
  // Indices (into Network::layers) of the layers whose outputs this layer reads, -1 for the
  // network's input image. One entry for every layer but `add`, which has two: the main path's
  // last batchnorm first, then the shortcut (the block's input or its downsample batchnorm).
  // Lets the executor build the residual graph without parsing names.
  std::vector<int> inputs;
};

struct Network {
  std::string name;  // "resnet50"
  int image_size = 224;
  int classes = 1000;
  std::vector<Layer> layers;  // in forward order
  long long params() const;
  double forward_flops() const;  // per image
};

double backward_flops(const Layer& layer);   // per image, see the conventions above
double backward_flops(const Network& net);   // sum over the layers, per image

// The layer named `name`, or nullptr when there is none.
const Layer* find_layer(const Network& net, std::string_view name);

// depth in {18, 34, 50, 101, 152}; throws std::invalid_argument naming the valid depths, and for
// an image_size or classes under 1. Any image_size from 1 up gives valid shapes (torchvision's
// adaptive average pool takes whatever layer4 leaves, 7x7 at 224).
Network resnet(int depth, int image_size = 224, int classes = 1000);

// A ResNet of any shape, for tests and experiments: `blocks` per stage (1 to 4 stages), basic
// blocks or bottlenecks, the stem's and first stage's width `width` (64 in torchvision; each
// stage doubles it). Named "resnet-custom". Throws std::invalid_argument for an empty or
// over-long `blocks`, a stage with no block, or a width, image size or class count under 1.
struct ResNetShape {
  std::vector<int> blocks = {2, 2, 2, 2};
  bool bottleneck = false;
  int width = 64;
  int image_size = 224;
  int classes = 1000;
};
Network resnet(const ResNetShape& shape);
std::vector<std::string> network_names();  // "resnet18" .. "resnet152"
// throws std::invalid_argument listing the names
Network network_by_name(std::string_view name, int image_size = 224, int classes = 1000);

}  // namespace basin::model
