// Synthetic datasets: reproducible, varied within a class, separable between classes, and never
// left half-written (nor left behind by a killed run).
#include "../catch.h"
#include "data_test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <set>

using namespace basin::data;
using basin::data::test::ScratchDir;

TEST_CASE("synthetic class names are distinct and sort in label order", "[data][synth]") {
  std::vector<std::string> names;
  for (int l = 0; l < kMaxSynthClasses; ++l) names.push_back(synth_class_name(l));
  REQUIRE(std::is_sorted(names.begin(), names.end()));
  REQUIRE(std::adjacent_find(names.begin(), names.end()) == names.end());
  REQUIRE(names[0] == "c000_red_disc_solid");
  // Hue and shape both change from one label to the next; label 64 on is checkered.
  REQUIRE(names[1] == "c001_orange_ring_solid");
  REQUIRE(names[8] == "c008_red_ring_solid");
  REQUIRE(names[64] == "c064_red_disc_checkered");
  // Distinct looks, not only distinct numbers: strip the number and compare.
  std::set<std::string> looks;
  for (const std::string& n : names) looks.insert(n.substr(5));
  REQUIRE(looks.size() == names.size());
}

TEST_CASE("synthetic images are reproducible and vary within a class", "[data][synth]") {
  Image a = render_synth_image(3, 48, 40, 1234), b = render_synth_image(3, 48, 40, 1234);
  REQUIRE(a.rgb == b.rgb);
  Image c = render_synth_image(3, 48, 40, 1235);
  double diff = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) diff += std::abs(a.rgb[i] - c.rgb[i]);
  REQUIRE(diff / a.rgb.size() > 10);  // another position, size, background and noise
}

TEST_CASE("synthetic classes are separable by a nearest class mean", "[data][synth]") {
  // A weak learner (nearest mean of 8x8 thumbnails) well above chance (1/8) says the classes
  // differ in what an image shows, not only in their names.
  const int classes = 8, train = 30, val = 10, side = 32;
  auto thumbnail = [&](int label, std::uint64_t seed) {
    Image img = render_synth_image(label, side, side, seed);
    return resample(img, {0, 0, side, side}, 8, 8).rgb;
  };
  std::vector<std::vector<double>> means(classes, std::vector<double>(8 * 8 * 3, 0));
  for (int l = 0; l < classes; ++l)
    for (int i = 0; i < train; ++i) {
      auto t = thumbnail(l, sample_rng(1, l, i).next());
      for (size_t k = 0; k < t.size(); ++k) means[l][k] += t[k] / double(train);
    }
  int correct = 0;
  for (int l = 0; l < classes; ++l)
    for (int i = 0; i < val; ++i) {
      auto t = thumbnail(l, sample_rng(2, l, i).next());
      int best = 0;
      double best_d = 1e300;
      for (int m = 0; m < classes; ++m) {
        double d = 0;
        for (size_t k = 0; k < t.size(); ++k) d += (t[k] - means[m][k]) * (t[k] - means[m][k]);
        if (d < best_d) best_d = d, best = m;
      }
      correct += best == l;
    }
  CAPTURE(correct);
  REQUIRE(correct >= classes * val / 2);
}

TEST_CASE("write_synth_dataset writes the layout and nothing on failure", "[data][synth]") {
  ScratchDir dir("synth");
  SynthConfig c{.classes = 3, .train_per_class = 4, .val_per_class = 2, .width = 20, .height = 16, .seed = 8};
  int last = 0;
  write_synth_dataset(dir.path / "set", c, false, [&](int done, int total) {
    REQUIRE(done == last + 1);
    REQUIRE(total == 18);
    last = done;
  });
  REQUIRE(last == 18);
  ImageNetLayout layout = open_imagenet(dir.path / "set");
  REQUIRE(layout.train.classes.size() == 3);
  REQUIRE(layout.train.samples.size() == 12);
  REQUIRE(layout.val.samples.size() == 6);
  JpegHeader h = read_jpeg_header(read_file(layout.val.samples[5].path));
  REQUIRE(h.width == 20);
  REQUIRE(h.height == 16);
  // Existing and not empty: refused without force, replaced with it.
  REQUIRE_THROWS_WITH(write_synth_dataset(dir.path / "set", c, false), Catch::Matchers::Contains("--force"));
  c.classes = 2;
  write_synth_dataset(dir.path / "set", c, true);
  REQUIRE(open_imagenet(dir.path / "set").train.classes.size() == 2);
  // A failure half way leaves neither the target nor the temporary directory behind.
  REQUIRE_THROWS(write_synth_dataset(dir.path / "broken", c, false, [](int done, int) {
    if (done == 5) throw std::runtime_error("disk full");
  }));
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) left.push_back(e.path().filename().string());
  REQUIRE(left == std::vector<std::string>{"set"});
}

TEST_CASE("write_synth_dataset removes what a killed earlier run left, and only that", "[data][synth]") {
  ScratchDir dir("synth-stale");
  // A process that has ended: its id is free (a killed writer's), where the parent's is alive.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  ::waitpid(child, nullptr, 0);
  const auto make = [&](const std::string& name) {
    std::filesystem::create_directories(dir.path / name / "train");
    return dir.path / name;
  };
  const auto dead = make(".set.partial-" + std::to_string(child));
  const auto live = make(".set.partial-" + std::to_string(::getppid()));
  const auto other = make(".other.partial-" + std::to_string(child));
  SynthConfig c{.classes = 2, .train_per_class = 1, .val_per_class = 1, .width = 16, .height = 16};
  write_synth_dataset(dir.path / "set", c, false);
  CHECK_FALSE(std::filesystem::exists(dead));
  CHECK(std::filesystem::exists(live));   // another run still writing
  CHECK(std::filesystem::exists(other));  // another target's
  CHECK(open_imagenet(dir.path / "set").train.samples.size() == 2);
}
