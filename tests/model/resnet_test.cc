// The ResNet layer lists against torchvision's published parameter counts and FLOPs, and the
// shapes of He et al. 2016, table 1.
#include "../catch.h"

#include <basin/model.h>

using namespace basin::model;

TEST_CASE("ResNet parameter counts equal torchvision's", "[model]") {
  // torchvision.models documentation, "num_params" of the IMAGENET1K weights.
  auto [depth, params] = GENERATE(std::pair{18, 11689512LL}, std::pair{34, 21797672LL},
                                  std::pair{50, 25557032LL}, std::pair{101, 44549160LL},
                                  std::pair{152, 60192808LL});
  CAPTURE(depth);
  REQUIRE(resnet(depth).params() == params);
}

TEST_CASE("ResNet forward FLOPs match torchvision's published GFLOPS", "[model]") {
  // torchvision documents 1.81 / 3.66 / 4.09 / 7.80 / 11.51 "GFLOPS", which count multiply-adds;
  // basin counts 2 FLOPs per multiply-add, and adds the elementwise layers (under 1.5%).
  auto [depth, gmacs] = GENERATE(std::pair{18, 1.81}, std::pair{34, 3.66}, std::pair{50, 4.09},
                                 std::pair{101, 7.80}, std::pair{152, 11.51});
  CAPTURE(depth);
  double macs = 0;
  for (const auto& l : resnet(depth).layers)
    if (l.kind == LayerKind::conv || l.kind == LayerKind::fc) macs += l.forward_flops / 2;
  REQUIRE_THAT(macs / 1e9, WithinRel(gmacs, 0.01));
  REQUIRE(resnet(depth).forward_flops() / 2 / 1e9 < gmacs * 1.02);
}

TEST_CASE("ResNet-50 shapes follow He et al. table 1 with torchvision names", "[model]") {
  Network n = resnet(50);
  int convs = 0, downsample = 0;
  for (const auto& l : n.layers) {
    convs += l.kind == LayerKind::conv;
    downsample += l.name.find("downsample.0") != std::string::npos;
  }
  REQUIRE(convs == 53);      // 1 stem + 16 blocks x 3 + 4 projection shortcuts
  REQUIRE(downsample == 4);
  auto find = [&](const std::string& name) -> const Layer& {
    for (const auto& l : n.layers)
      if (l.name == name) return l;
    FAIL("no layer " << name);
    throw;
  };
  REQUIRE(find("conv1").out_h == 112);
  REQUIRE(find("maxpool").out_h == 56);
  // v1.5: the stride sits on the 3x3 conv of the first block of a stage.
  REQUIRE(find("layer2.0.conv1").stride == 1);
  REQUIRE(find("layer2.0.conv2").stride == 2);
  REQUIRE(find("layer2.0.conv2").out_h == 28);
  REQUIRE(find("layer4.2.conv3").out_channels == 2048);
  REQUIRE(find("layer4.2.conv3").out_h == 7);
  REQUIRE(find("fc").params == 2048 * 1000 + 1000);
  REQUIRE(n.layers.back().name == "fc");
}

TEST_CASE("unknown networks and depths are rejected with the valid choices", "[model]") {
  REQUIRE_THROWS_WITH(resnet(42), Catch::Matchers::Contains("18, 34, 50, 101 or 152"));
  REQUIRE_THROWS_WITH(network_by_name("vgg16"), Catch::Matchers::Contains("resnet50"));
  REQUIRE(network_by_name("resnet101").params() == 44549160LL);
}
