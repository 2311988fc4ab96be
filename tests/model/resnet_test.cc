// The ResNet layer lists against numbers basin did not compute: torchvision's published parameter
// counts and GFLOPS, He et al. 2016 table 1, and a per-layer dump of torchvision's own ResNet-50
// and ResNet-18 (fixtures/, made by torchvision_layers.py; its README says how).
#include "../catch.h"

#include <basin/model.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

using namespace basin::model;

namespace {

// Next to this file, so the test needs no path from the build system.
nlohmann::json torch_fixture(const std::string& network) {
  const auto path = std::filesystem::path(__FILE__).parent_path() / "fixtures" /
                    (network + "_torch_params.json");
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return nlohmann::json::parse(in);
}

const Layer& layer(const Network& n, const std::string& name) {
  const Layer* l = find_layer(n, name);
  if (l == nullptr) throw std::runtime_error("no layer " + name + " in " + n.name);
  return *l;
}

// The message of the std::invalid_argument f throws ("" if none); plain string search keeps the
// test the same under Catch2 v2 and v3, whose string matchers differ.
template <typename F>
std::string invalid_argument_of(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("ResNet parameter counts equal torchvision's", "[model]") {
  // torchvision.models documentation, "num_params" of the IMAGENET1K_V1 weights.
  auto [depth, params] = GENERATE(std::pair{18, 11689512LL}, std::pair{34, 21797672LL},
                                  std::pair{50, 25557032LL}, std::pair{101, 44549160LL},
                                  std::pair{152, 60192808LL});
  CAPTURE(depth);
  REQUIRE(resnet(depth).params() == params);
}

TEST_CASE("ResNet forward FLOPs match torchvision's published GFLOPS", "[model]") {
  // torchvision documents 1.81 / 3.66 / 4.09 / 7.80 / 11.51 "GFLOPS" at 224x224, which count
  // conv and fc multiply-adds; basin counts 2 FLOPs a multiply-add. 1% covers their rounding.
  auto [depth, gmacs] = GENERATE(std::pair{18, 1.81}, std::pair{34, 3.66}, std::pair{50, 4.09},
                                 std::pair{101, 7.80}, std::pair{152, 11.51});
  CAPTURE(depth);
  const Network n = resnet(depth);
  double macs = 0;
  for (const auto& l : n.layers)
    if (l.kind == LayerKind::conv || l.kind == LayerKind::fc) macs += l.forward_flops / 2;
  REQUIRE_THAT(macs / 1e9, WithinRel(gmacs, 0.01));
  // The elementwise layers (batchnorm, relu, add, pools) are cheap next to the convs.
  REQUIRE(n.forward_flops() / 2 / 1e9 > gmacs);
  REQUIRE(n.forward_flops() / 2 / 1e9 < gmacs * 1.02);
}

TEST_CASE("every layer matches torchvision's module of the same name", "[model]") {
  const std::string network = GENERATE("resnet50", "resnet18");
  CAPTURE(network);
  const nlohmann::json torch = torch_fixture(network);
  const Network n = network_by_name(network);
  REQUIRE(n.image_size == torch["image_size"].get<int>());
  REQUIRE(n.params() == torch["total_params"].get<long long>());

  // The same layers in the same forward order: the modules torchvision hooks are exactly
  // basin's layers with parameters plus the two pools.
  std::vector<std::string> ours, theirs;
  for (const auto& l : n.layers)
    if (l.has_params() || l.kind == LayerKind::maxpool || l.kind == LayerKind::avgpool)
      ours.push_back(l.name);
  for (const auto& row : torch["layers"]) theirs.push_back(row["name"].get<std::string>());
  REQUIRE(ours == theirs);

  double conv_fc_flops = 0;
  for (const auto& row : torch["layers"]) {
    const Layer& l = layer(n, row["name"].get<std::string>());
    CAPTURE(l.name);
    CHECK(to_string(l.kind) == row["kind"].get<std::string>());
    CHECK(l.params == row["params"].get<long long>());
    const auto shape = row["out_shape"].get<std::vector<int>>();
    if (l.kind == LayerKind::fc) {
      CHECK(shape == std::vector<int>{l.out_channels});
    } else {
      CHECK(shape == std::vector<int>{l.out_channels, l.out_h, l.out_w});
      CHECK(l.activation_bytes == 4.0 * shape[0] * shape[1] * shape[2]);
    }
    if (row.contains("flops")) {
      CHECK(l.forward_flops == row["flops"].get<double>());
      conv_fc_flops += l.forward_flops;
    }
  }
  REQUIRE(conv_fc_flops == torch["total_flops"].get<double>());
}

TEST_CASE("ResNet depth counts the main-path convs plus fc", "[model]") {
  // He et al. 2016 table 1: ResNet-50 is 49 convs and 1 fc; projection shortcuts are extra, one
  // per stage whose first block changes the shape (layer1 too for bottlenecks, 64 -> 256).
  auto [depth, projections] = GENERATE(std::pair{18, 3}, std::pair{34, 3}, std::pair{50, 4},
                                       std::pair{101, 4}, std::pair{152, 4});
  CAPTURE(depth);
  int main_path = 0, downsample = 0, fc = 0;
  for (const auto& l : resnet(depth).layers) {
    if (l.kind == LayerKind::fc) ++fc;
    if (l.kind != LayerKind::conv) continue;
    if (l.name.find(".downsample.") != std::string::npos)
      ++downsample;
    else
      ++main_path;
  }
  REQUIRE(main_path + fc == depth);
  REQUIRE(downsample == projections);
}

TEST_CASE("ResNet-50 shapes follow He et al. table 1 with the v1.5 stride", "[model]") {
  const Network n = resnet(50);
  REQUIRE(layer(n, "conv1").out_h == 112);
  REQUIRE(layer(n, "maxpool").out_h == 56);
  REQUIRE(layer(n, "layer1.2.conv3").out_channels == 256);
  // v1.5: the stride sits on the 3x3 conv of a stage's first block and on its shortcut.
  REQUIRE(layer(n, "layer2.0.conv1").stride == 1);
  REQUIRE(layer(n, "layer2.0.conv2").stride == 2);
  REQUIRE(layer(n, "layer2.0.conv2").out_h == 28);
  REQUIRE(layer(n, "layer2.0.downsample.0").stride == 2);
  REQUIRE(layer(n, "layer3.5.conv3").out_h == 14);
  REQUIRE(layer(n, "layer4.2.conv3").out_channels == 2048);
  REQUIRE(layer(n, "layer4.2.conv3").out_h == 7);
  REQUIRE(layer(n, "layer4.2.conv3").out_w == 7);
  REQUIRE(layer(n, "fc").in_channels == 2048);
  REQUIRE(n.layers.back().name == "fc");
}

TEST_CASE("image size and class count follow the arguments as torchvision's do", "[model]") {
  // torchvision resnet50(num_classes=10) has 23,528,522 parameters; layer4's output is 5x5 at
  // 160 pixels, 10x10 at 299 and 1x1 at 32, with the same weights.
  REQUIRE(resnet(50, 224, 10).params() == 23528522LL);
  REQUIRE(resnet(50, 224, 10).layers.back().out_channels == 10);
  auto [size, side] = GENERATE(std::pair{160, 5}, std::pair{299, 10}, std::pair{32, 1});
  CAPTURE(size);
  const Network n = resnet(50, size);
  REQUIRE(n.image_size == size);
  REQUIRE(layer(n, "layer4.2.conv3").out_h == side);
  REQUIRE(n.params() == 25557032LL);
}

TEST_CASE("layers name their torchvision block as their stage", "[model]") {
  const Network n = resnet(50);
  std::set<std::string> stages;
  for (const auto& l : n.layers) {
    stages.insert(l.stage);
    CAPTURE(l.name, l.stage);
    if (l.name.rfind("layer", 0) == 0) REQUIRE(l.name.rfind(l.stage + ".", 0) == 0);
  }
  REQUIRE(layer(n, "bn1").stage == "conv1");
  REQUIRE(layer(n, "maxpool").stage == "conv1");
  REQUIRE(layer(n, "layer3.5.conv2").stage == "layer3.5");
  REQUIRE(layer(n, "layer4.0.downsample.1").stage == "layer4.0");
  REQUIRE(layer(n, "avgpool").stage == "fc");
  REQUIRE(stages.size() == 1 + 16 + 1);  // stem, 3+4+6+3 blocks, head
}

TEST_CASE("backward costs twice the forward for layers with parameters and once otherwise",
          "[model]") {
  const Network n = resnet(50);
  const Layer& conv = layer(n, "layer1.0.conv2");
  const Layer& relu = layer(n, "layer1.0.relu1");
  REQUIRE(conv.has_params());
  REQUIRE_FALSE(relu.has_params());
  REQUIRE(backward_flops(conv) == 2 * conv.forward_flops);
  REQUIRE(backward_flops(relu) == relu.forward_flops);
  double sum = 0;
  for (const auto& l : n.layers) sum += backward_flops(l);
  REQUIRE_THAT(backward_flops(n), WithinRel(sum, 1e-12));
  // Nearly all of the work has parameters, so backward is close to 2x forward.
  REQUIRE_THAT(backward_flops(n) / n.forward_flops(), WithinAbs(2.0, 0.05));
}

TEST_CASE("networks are found by name and unknown ones are rejected with the choices",
          "[model]") {
  for (const auto& name : network_names()) REQUIRE(network_by_name(name).name == name);
  REQUIRE(network_names().size() == 5);
  REQUIRE(network_by_name("resnet101").params() == 44549160LL);
  const std::string bad_depth = invalid_argument_of([] { resnet(42); });
  CAPTURE(bad_depth);
  REQUIRE(bad_depth.find("18, 34, 50, 101 or 152") != std::string::npos);
  const std::string bad_name = invalid_argument_of([] { network_by_name("vgg16"); });
  CAPTURE(bad_name);
  REQUIRE(bad_name.find("vgg16") != std::string::npos);
  for (const auto& name : network_names()) REQUIRE(bad_name.find(name) != std::string::npos);
  REQUIRE_THROWS_AS(resnet(50, 0), std::invalid_argument);
  REQUIRE_THROWS_AS(resnet(50, 224, 0), std::invalid_argument);
}

TEST_CASE("ResNet layers name the layers they read", "[model]") {
  const Network n = resnet(50);
  auto index = [&](const std::string& name) {
    return static_cast<int>(&layer(n, name) - n.layers.data());
  };
  CHECK(layer(n, "conv1").inputs == std::vector<int>{-1});
  CHECK(layer(n, "bn1").inputs == std::vector<int>{index("conv1")});
  // A projection block: both the main path and the shortcut read the block's input.
  CHECK(layer(n, "layer2.0.conv1").inputs == std::vector<int>{index("layer1.2.relu3")});
  CHECK(layer(n, "layer2.0.downsample.0").inputs == std::vector<int>{index("layer1.2.relu3")});
  CHECK(layer(n, "layer2.0.add").inputs ==
        std::vector<int>{index("layer2.0.bn3"), index("layer2.0.downsample.1")});
  // An identity block: the shortcut is the block's input itself.
  CHECK(layer(n, "layer2.1.add").inputs ==
        std::vector<int>{index("layer2.1.bn3"), index("layer2.0.relu3")});
  CHECK(layer(n, "layer2.1.relu3").inputs == std::vector<int>{index("layer2.1.add")});
  CHECK(layer(n, "fc").inputs == std::vector<int>{index("avgpool")});
  // Every input comes from an earlier layer, so the list is a topological order.
  for (int i = 0; i < static_cast<int>(n.layers.size()); ++i) {
    CAPTURE(n.layers[i].name);
    REQUIRE(n.layers[i].inputs.size() == (n.layers[i].kind == LayerKind::add ? 2u : 1u));
    for (int in : n.layers[i].inputs) CHECK((in >= -1 && in < i));
  }
}

TEST_CASE("A custom ResNet shape scales widths and stages", "[model]") {
  // Two basic-block stages of width 8 on 32x32 images: stem 32->16->8, layer2 halves to 4.
  const Network n = resnet(ResNetShape{.blocks = {1, 2}, .bottleneck = false, .width = 8,
                                       .image_size = 32, .classes = 10});
  CHECK(n.name == "resnet-custom");
  CHECK(layer(n, "layer2.1.conv2").out_channels == 16);
  CHECK(layer(n, "layer2.1.conv2").out_h == 4);
  CHECK(find_layer(n, "layer3.0.conv1") == nullptr);
  // conv1 3*8*49, bn 2*8; layer1.0: 2 convs 8*8*9 + 2 bn; layer2.0: 8*16*9 + 16*16*9 + ds 8*16
  // + 3 bn of 16; layer2.1: 2 * 16*16*9 + 2 bn; fc 16*10 + 10.
  const long long expected = 3 * 8 * 49 + 16 + 2 * (8 * 8 * 9 + 16) + 8 * 16 * 9 + 16 * 16 * 9 +
                             8 * 16 + 3 * 32 + 2 * (16 * 16 * 9 + 32) + 16 * 10 + 10;
  CHECK(n.params() == expected);
  CHECK(!invalid_argument_of([] { resnet(ResNetShape{.blocks = {}}); }).empty());
  CHECK(!invalid_argument_of([] { resnet(ResNetShape{.blocks = {1, 0}}); }).empty());
  CHECK(!invalid_argument_of([] { resnet(ResNetShape{.width = 0}); }).empty());
}
