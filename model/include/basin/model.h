// basin model: the networks basin trains and simulates, as one layer list.
//
// The simulator takes each layer's parameters, FLOPs and activation size from here, and the
// executor builds its network from the same list, so the two never disagree about what ResNet-50
// is. Layouts and names follow torchvision (ResNet v1.5: stride on the bottleneck's 3x3 conv),
// so gradients and parameter counts can be checked against PyTorch by name.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace basin::model {

enum class LayerKind { conv, batchnorm, relu, maxpool, avgpool, fc, add };
const char* to_string(LayerKind k);

// Per image. FLOPs count a multiply-add as 2 (conv: 2 Cin k^2 Cout Hout Wout; fc: 2 in out);
// batchnorm, relu, add and pooling count 1 per output element (pooling: per window element).
// activation_bytes is the output tensor in fp32.
struct Layer {
  std::string name;  // torchvision module name: "conv1", "layer1.0.conv2", "layer1.0.downsample.0"
  LayerKind kind = LayerKind::conv;
  int in_channels = 0, out_channels = 0;
  int kernel = 0, stride = 1, padding = 0;
  int in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  long long params = 0;
  double forward_flops = 0;
  double activation_bytes = 0;
};

struct Network {
  std::string name;  // "resnet50"
  int image_size = 224;
  int classes = 1000;
  std::vector<Layer> layers;  // in forward order
  long long params() const;
  double forward_flops() const;  // per image
};

// depth in {18, 34, 50, 101, 152}; throws std::invalid_argument naming the valid depths.
Network resnet(int depth, int image_size = 224, int classes = 1000);
std::vector<std::string> network_names();
Network network_by_name(std::string_view name);  // throws std::invalid_argument listing names

}  // namespace basin::model
