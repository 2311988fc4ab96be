// Dynamic loss scaling: the scale's state machine against the scheme's closed form (halve and
// skip on overflow, double after N good steps), its place in the checkpoint (round trip, and a
// basin.checkpoint/1 file from before it still loading), and whole training runs on the CPU
// backend where an overflow planted in the gradients (or in the logits, as an fp16 forward's
// overflow would be) skips exactly that step and a resumed run continues the same sequence of
// scales.
#include <basin/train.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <memory>

#include "../catch.h"
#include "../temp_dir.h"
#include "device_double.h"
#include "train_fixture.h"

using namespace basin;
using namespace basin::exec;
namespace fs = std::filesystem;

TEST_CASE("Loss scale halves and skips on overflow and doubles after N good steps",
          "[exec][loss_scale]") {
  const LossScaleConfig c{.enabled = true, .initial = 65536, .growth_interval = 3};
  LossScaleState s = initial_loss_scale(c);
  REQUIRE(s == LossScaleState{.scale = 65536});
  CHECK(update_loss_scale(s, c, true));
  CHECK(update_loss_scale(s, c, true));
  CHECK(s == LossScaleState{.scale = 65536, .good_steps = 2});
  CHECK(update_loss_scale(s, c, true));  // the third good step in a row: 2^17
  CHECK(s == LossScaleState{.scale = 131072, .good_steps = 0});
  CHECK(update_loss_scale(s, c, true));
  CHECK_FALSE(update_loss_scale(s, c, false));  // overflow: skip, halve, restart the count
  CHECK(s == LossScaleState{.scale = 65536, .good_steps = 0, .skipped_steps = 1});
  CHECK_FALSE(update_loss_scale(s, c, false));
  CHECK(s == LossScaleState{.scale = 32768, .good_steps = 0, .skipped_steps = 2});

  SECTION("disabled: scale 1 forever, and a non-finite gradient is not skipped here") {
    const LossScaleConfig off{};
    LossScaleState t = initial_loss_scale(off);
    CHECK(t.scale == 1);
    CHECK(update_loss_scale(t, off, true));
    CHECK_FALSE(update_loss_scale(t, off, false));
    CHECK(t == LossScaleState{.scale = 1});
  }
  SECTION("bad settings are named") {
    CHECK_THROWS_WITH(check_loss_scale({.enabled = true, .initial = 0}), HasText("loss_scale.initial"));
    CHECK_THROWS_WITH(check_loss_scale({.enabled = true, .backoff_factor = 1}),
                      HasText("loss_scale.backoff_factor"));
    CHECK_THROWS_WITH(check_loss_scale({.enabled = true, .growth_interval = 0}),
                      HasText("loss_scale.growth_interval"));
    CHECK_NOTHROW(check_loss_scale({.enabled = true}));
  }
}

#if BASIN_HAVE_DNNL
namespace {

using basin::test::TempDir;

Backend& cpu() {
  static std::unique_ptr<Backend> b = make_cpu_backend(1);
  return *b;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// 64-bit FNV-1a, the checkpoint's checksum, written out here from its definition.
std::uint64_t fnv1a(const std::string& bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char b : bytes) h = (h ^ b) * 1099511628211ull;
  return h;
}

std::vector<nlohmann::json> step_lines(const fs::path& log) {
  std::vector<nlohmann::json> out;
  std::ifstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    auto r = nlohmann::json::parse(line);
    if (!r.contains("type")) out.push_back(r);
  }
  return out;
}

// The small network and dataset of train_test.cc, a few steps at a time, no validation, and
// RandomResizedCrop's own scale range.
TrainConfig small_run(const fs::path& data, const fs::path& out) {
  TrainConfig c = exec::test::learning_run(data, out);
  c.epochs = 2;
  c.augment.min_scale = TrainConfig{}.augment.min_scale;
  c.validate = false;
  return c;
}

struct Saved {
  std::vector<float> params, velocity, buffers;
  RunState state;
};

Saved load_checkpoint(const TrainConfig& c) {
  Net net(network_for(c, 10), cpu(), c.batch);
  Saved s;
  s.velocity.resize(net.params().size());
  s.state = read_checkpoint(c.out / "checkpoint.basin", net, s.velocity);
  s.params = net.to_host(net.params());
  s.buffers = net.to_host(net.buffers());
  return s;
}

// Plants an infinity in the first gradient at `bad_step`.
std::function<void(long long, Net&)> overflow_at(long long bad_step) {
  return [bad_step](long long step, Net& net) {
    if (step == bad_step) net.grads()[0] = std::numeric_limits<float>::infinity();
  };
}

// The dataset every test here trains on: 10 learnable classes.
void write_dataset(const fs::path& root) {
  data::write_synth_dataset(root, {.classes = 10, .train_per_class = 100, .val_per_class = 20, .seed = 7},
                            false);
}

// Whether any progress line holds `text`.
bool printed(const std::vector<std::string>& lines, const std::string& text) {
  for (const auto& l : lines)
    if (l.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("The loss scale rides in the checkpoint and old checkpoints still load",
          "[exec][loss_scale]") {
  TempDir dir("scale-checkpoint");
  const auto shape = model::ResNetShape{.blocks = {1}, .width = 4, .image_size = 8, .classes = 3};
  Net net(model::resnet(shape), cpu(), 2);
  net.init({.seed = 3});
  const std::vector<float> velocity(net.params().size(), 0.5f);
  const fs::path path = dir.path / "c.basin";
  const LossScaleState scale{.scale = 8192, .good_steps = 17, .skipped_steps = 4};
  write_checkpoint(path, net, velocity, {.step = 9, .recipe = "{}", .loss_scale = scale});
  std::vector<float> v(velocity.size());
  RunState st = read_checkpoint(path, net, v);
  REQUIRE(st.loss_scale.has_value());
  CHECK(*st.loss_scale == scale);
  CHECK(st.step == 9);

  // Without scaling the field is left out; rewritten as a /1 file (what basin wrote before
  // loss scaling, byte for byte) it loads with no loss scale.
  write_checkpoint(path, net, velocity, {.step = 5, .recipe = "{}"});
  std::string bytes = slurp(path);
  REQUIRE(bytes.find("loss_scale") == std::string::npos);
  const size_t at = bytes.find("basin.checkpoint/2");
  REQUIRE(at != std::string::npos);
  bytes[at + std::string("basin.checkpoint/").size()] = '1';
  bytes.resize(bytes.size() - 8);
  const std::uint64_t sum = fnv1a(bytes);
  bytes.append(reinterpret_cast<const char*>(&sum), 8);
  std::ofstream(path, std::ios::binary) << bytes;
  st = read_checkpoint(path, net, v);
  CHECK(st.step == 5);
  CHECK_FALSE(st.loss_scale.has_value());
  CHECK(v == velocity);
}

TEST_CASE("An overflow planted in the gradients skips exactly that step on the CPU backend",
          "[exec][loss_scale][train]") {
  TempDir dir("scale-skip");
  write_dataset(dir.path / "data");
  // A: one plain step. B: the same first step with loss scaling, then a second step whose
  // gradients overflow. B must end with A's weights and momentum bit for bit: its first step
  // is A's (a power-of-two scale and its inverse are exact in fp32 away from over- and
  // underflow), and its second changes nothing.
  TrainConfig a = small_run(dir.path / "data", dir.path / "a");
  a.stop_after = 1;
  train(a, cpu());
  TrainConfig b = small_run(dir.path / "data", dir.path / "b");
  b.stop_after = 2;
  b.loss_scale = {.enabled = true, .initial = 1024};
  b.after_gradients = overflow_at(1);
  std::vector<std::string> lines;
  const TrainSummary sb = train(b, cpu(), [&](const std::string& l) { lines.push_back(l); });
  CHECK(sb.steps == 2);
  CHECK(sb.skipped_steps == 1);

  const Saved sa = load_checkpoint(a), saved_b = load_checkpoint(b);
  CHECK(saved_b.params == sa.params);
  CHECK(saved_b.velocity == sa.velocity);
  REQUIRE(saved_b.state.loss_scale.has_value());
  CHECK(*saved_b.state.loss_scale == LossScaleState{.scale = 512, .good_steps = 0, .skipped_steps = 1});
  CHECK_FALSE(sa.state.loss_scale.has_value());  // a run without scaling writes none

  const auto log = step_lines(b.out / "log.jsonl");
  REQUIRE(log.size() == 2);
  CHECK(log[0].at("loss_scale") == 1024.0);
  CHECK_FALSE(log[0].contains("skipped"));
  CHECK(log[1].at("loss_scale") == 1024.0);  // the scale the overflowing step ran with
  CHECK(log[1].at("skipped") == true);
  CHECK(nlohmann::json::parse(slurp(b.out / "summary.json")).at("skipped_steps") == 1);
  CHECK(printed(lines, "step 1: a gradient overflowed"));
}

TEST_CASE("A resumed run with loss scaling continues the same sequence of scales",
          "[exec][loss_scale][train]") {
  TempDir dir("scale-resume");
  write_dataset(dir.path / "data");
  TrainConfig whole = small_run(dir.path / "data", dir.path / "whole");
  whole.stop_after = 6;
  whole.loss_scale = {.enabled = true, .initial = 1024, .growth_interval = 2};
  whole.after_gradients = overflow_at(3);
  train(whole, cpu());
  TrainConfig part = whole;
  part.out = dir.path / "part";
  part.stop_after = 4;  // the checkpoint after the skipped step: scale 1024, count 0, 1 skip
  train(part, cpu());
  REQUIRE(load_checkpoint(part).state.loss_scale ==
          LossScaleState{.scale = 1024, .good_steps = 0, .skipped_steps = 1});
  part.stop_after = 6;
  part.resume = true;
  const TrainSummary resumed = train(part, cpu());
  CHECK(resumed.skipped_steps == 1);

  // The scheme by hand, growth every 2 good steps: 1024, 1024 (grow), 2048, 2048 (overflow:
  // halve), 1024, 1024 (grow) -> 2048 at the end.
  const std::vector<double> scales = {1024, 1024, 2048, 2048, 1024, 1024};
  for (const TrainConfig* c : {&whole, &part}) {
    const auto log = step_lines(c->out / "log.jsonl");
    REQUIRE(log.size() == scales.size());
    for (size_t i = 0; i < log.size(); ++i) {
      CAPTURE(c->out, i);
      CHECK(log[i].at("loss_scale") == scales[i]);
      CHECK(log[i].contains("skipped") == (i == 3));
    }
  }
  const Saved w = load_checkpoint(whole), p = load_checkpoint(part);
  CHECK(*w.state.loss_scale == LossScaleState{.scale = 2048, .good_steps = 0, .skipped_steps = 1});
  CHECK(*p.state.loss_scale == *w.state.loss_scale);
  CHECK(p.params == w.params);
  CHECK(p.velocity == w.velocity);
}

// Plants an infinity in the first logit of losses [from, until) (one per step here), as a
// forward that overflowed in fp16 leaves it: the loss and the gradients become NaN.
static void overflow_forwards(exec::test::DeviceDouble& backend, int from, int until) {
  backend.before_loss = [calls = 0, from, until](const Tensor& logits) mutable {
    if (calls >= from && calls < until) logits.ptr()[0] = std::numeric_limits<float>::infinity();
    ++calls;
  };
}

TEST_CASE("A non-finite loss under loss scaling skips the step as GradScaler does",
          "[exec][loss_scale][train]") {
  TempDir dir("scale-loss");
  write_dataset(dir.path / "data");
  // A: one plain step. B: the same step, then one whose forward overflowed (a NaN loss and NaN
  // gradients): skipped, the scale halved, and B ends with A's state, running statistics
  // included (the skipped step's forward updated them; they are put back).
  exec::test::DeviceDouble da, db;
  TrainConfig a = small_run(dir.path / "data", dir.path / "a");
  a.stop_after = 1;
  train(a, da);
  TrainConfig b = small_run(dir.path / "data", dir.path / "b");
  b.stop_after = 2;
  b.loss_scale = {.enabled = true, .initial = 1024};
  overflow_forwards(db, 1, 2);
  std::vector<std::string> lines;
  const TrainSummary sb = train(b, db, [&](const std::string& l) { lines.push_back(l); });
  CHECK(sb.steps == 2);
  CHECK(sb.skipped_steps == 1);
  const Saved sa = load_checkpoint(a), saved_b = load_checkpoint(b);
  CHECK(saved_b.params == sa.params);
  CHECK(saved_b.velocity == sa.velocity);
  CHECK(saved_b.buffers == sa.buffers);
  REQUIRE(saved_b.state.loss_scale.has_value());
  CHECK(*saved_b.state.loss_scale == LossScaleState{.scale = 512, .good_steps = 0, .skipped_steps = 1});
  const auto log = step_lines(b.out / "log.jsonl");
  REQUIRE(log.size() == 2);
  CHECK(log[1].at("skipped") == true);
  // JSON has no NaN: the skipped step's loss is written as a string, as the diverged record's is.
  CHECK(log[1].at("loss") == "nan");
  CHECK(log[0].at("loss").is_number());
  CHECK(printed(lines, "step 1: the loss overflowed"));
}

TEST_CASE("A loss that stays non-finite is divergence, at once without loss scaling",
          "[exec][loss_scale][train]") {
  TempDir dir("scale-diverge");
  write_dataset(dir.path / "data");
  SECTION("a loss that stays non-finite is divergence after 16 skipped steps in a row") {
    exec::test::DeviceDouble dc;
    TrainConfig c = small_run(dir.path / "data", dir.path / "c");
    c.stop_after = 20;
    c.loss_scale = {.enabled = true, .initial = 1024};
    overflow_forwards(dc, 1, 1000);
    CHECK_THROWS_AS(train(c, dc), Diverged);
    const auto clog = step_lines(c.out / "log.jsonl");
    REQUIRE(clog.size() == 16);  // step 0, then 15 skipped; step 16 is the 16th non-finite loss
    for (size_t i = 1; i < clog.size(); ++i) CHECK(clog[i].at("skipped") == true);
  }
  SECTION("without loss scaling a non-finite loss is divergence at once") {
    exec::test::DeviceDouble dc;
    TrainConfig c = small_run(dir.path / "data", dir.path / "c");
    c.stop_after = 2;
    overflow_forwards(dc, 1, 2);
    CHECK_THROWS_AS(train(c, dc), Diverged);
    CHECK(step_lines(c.out / "log.jsonl").size() == 1);
  }
}
#endif  // BASIN_HAVE_DNNL
