// The training loop: the learning-rate schedule against Goyal et al.'s closed forms, weight decay
// skipping batch norm and biases, checkpoints that refuse damage, and whole runs on a synthesized
// dataset: a small ResNet learns it, a resumed run ends with the uninterrupted run's weights,
// unreadable files are skipped and counted, and a diverging loss stops the run cleanly.
#include <basin/train.h>

#include <nlohmann/json.hpp>


#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>

#include "../catch.h"
#include "../temp_dir.h"
#include "train_fixture.h"

using namespace basin;
using namespace basin::exec;
namespace fs = std::filesystem;

namespace {

using basin::test::TempDir;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("Learning rate follows the linear scaling rule warmup and step decay", "[exec][train]") {
  // Goyal et al. 2017: kn = 8192 gives 0.1 * 8192 / 256 = 3.2, reached linearly from 0.1 over
  // 5 epochs, then x0.1 at epochs 30, 60 and 80.
  LrSchedule s;
  REQUIRE_THAT(scaled_lr(s, 8192), WithinRel(3.2, 1e-12));
  REQUIRE_THAT(learning_rate(s, 8192, 0, 90), WithinRel(0.1, 1e-12));
  REQUIRE_THAT(learning_rate(s, 8192, 2.5, 90), WithinRel(0.1 + 3.1 / 2, 1e-12));
  REQUIRE_THAT(learning_rate(s, 8192, 5, 90), WithinRel(3.2, 1e-12));
  REQUIRE_THAT(learning_rate(s, 8192, 29.99, 90), WithinRel(3.2, 1e-12));
  REQUIRE_THAT(learning_rate(s, 8192, 30, 90), WithinRel(0.32, 1e-12));
  REQUIRE_THAT(learning_rate(s, 8192, 60, 90), WithinRel(0.032, 1e-12));
  REQUIRE_THAT(learning_rate(s, 8192, 85, 90), WithinRel(0.0032, 1e-12));
  // The reference batch: no warmup ramp is visible since it starts where it ends.
  REQUIRE_THAT(learning_rate(s, 256, 1, 90), WithinRel(0.1, 1e-12));
  // Below it the peak 0.1 * 32 / 256 = 0.0125 is under the paper's start 0.1: warmup only
  // climbs, so every step of the first 5 epochs runs at 0.0125, never above it.
  for (double epoch : {0.0, 0.5, 2.5, 4.99, 5.0})
    REQUIRE_THAT(learning_rate(s, 32, epoch, 90), WithinRel(0.0125, 1e-12));
  REQUIRE_THAT(warmup_start(s, 32), WithinRel(0.0125, 1e-12));

  SECTION("an explicit warmup start and no warmup") {
    s.warmup_start_lr = 0;
    REQUIRE_THAT(learning_rate(s, 1024, 1, 90), WithinRel(0.4 / 5, 1e-12));
    s.warmup_start_lr = 1.0;  // above the peak 0.4: lowered to it
    REQUIRE_THAT(learning_rate(s, 1024, 1, 90), WithinRel(0.4, 1e-12));
    s.warmup_start_lr = 0;
    s.warmup_epochs = 0;
    REQUIRE_THAT(learning_rate(s, 1024, 0, 90), WithinRel(0.4, 1e-12));
  }
  SECTION("a milestone inside the warmup decays the ramp") {
    // 3 epochs at batch 16 with base batch 16 (peak 0.1, no ramp) and milestones 1 and 2: 0.1,
    // then 0.01, then 0.001, although the default 5 warmup epochs cover them all.
    s.base_batch = 16;
    s.milestones = {1, 2};
    REQUIRE_THAT(learning_rate(s, 16, 0.5, 3), WithinRel(0.1, 1e-12));
    REQUIRE_THAT(learning_rate(s, 16, 1.5, 3), WithinRel(0.01, 1e-12));
    REQUIRE_THAT(learning_rate(s, 16, 2.5, 3), WithinRel(0.001, 1e-12));
    // With a ramp (peak 0.4 at 64 images), epoch 2.5 is half way up, times gamma twice.
    REQUIRE_THAT(learning_rate(s, 64, 2.5, 3), WithinRel((0.1 + 0.3 * 2.5 / 5) * 0.01, 1e-12));
  }
  SECTION("cosine decays to half way at the midpoint and to 0 at the end") {
    s.decay = LrSchedule::Decay::cosine;
    REQUIRE_THAT(learning_rate(s, 512, 5, 45), WithinRel(0.2, 1e-12));
    REQUIRE_THAT(learning_rate(s, 512, 25, 45), WithinRel(0.1, 1e-12));
    REQUIRE_THAT(learning_rate(s, 512, 15, 45), WithinRel(0.2 * 0.5 * (1 + std::cos(M_PI / 4)), 1e-12));
    REQUIRE(learning_rate(s, 512, 45, 45) < 1e-15);
  }
}

TEST_CASE("SGD step decays weights but not batch norm parameters or biases", "[exec][train]") {
#if BASIN_HAVE_DNNL
  auto backend = make_cpu_backend(1);
  Net net(model::resnet(model::ResNetShape{.blocks = {1}, .width = 4, .image_size = 8, .classes = 3}),
          *backend, 1);
  std::fill(net.params().begin(), net.params().end(), 2.f);
  std::fill(net.grads().begin(), net.grads().end(), 0.f);
  std::vector<float> velocity(net.params().size(), 0.f);
  const double lr = 0.5, wd = 0.01;
  SECTION("Goyal et al.: no decay on batch norm and biases") {
    sgd_step(net, velocity, {.momentum = 0.9, .weight_decay = wd}, lr);
    for (const ParamInfo& p : net.param_info()) {
      CAPTURE(p.name);
      const double expected = p.no_weight_decay ? 2 : 2 * (1 - lr * wd);
      REQUIRE_THAT(net.params()[p.offset], WithinRel(expected, 1e-6));
      REQUIRE_THAT(net.params()[p.offset + p.count - 1], WithinRel(expected, 1e-6));
    }
    REQUIRE(net.param("bn1.weight").no_weight_decay);
    REQUIRE(net.param("fc.bias").no_weight_decay);
    REQUIRE_FALSE(net.param("fc.weight").no_weight_decay);
  }
  SECTION("decay everywhere when asked") {
    sgd_step(net, velocity, {.momentum = 0.9, .weight_decay = wd, .decay_bn_and_bias = true}, lr);
    for (float w : net.params()) REQUIRE_THAT(w, WithinRel(2 * (1 - lr * wd), 1e-6));
  }
#else
  WARN("skipped: built without oneDNN");
#endif
}

#if BASIN_HAVE_DNNL

namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> b = make_cpu_backend(1);
  return *b;
}

// 10 classes of 64x64 synthetic JPEGs, 100 training and 20 validation images each.
fs::path synth_dataset(const fs::path& dir) {
  data::write_synth_dataset(dir / "data", {.classes = 10, .train_per_class = 100,
                                           .val_per_class = 20, .seed = 7},
                            false);
  return dir / "data";
}

TrainConfig small_run(const fs::path& data, const fs::path& out) { return exec::test::learning_run(data, out); }

std::vector<nlohmann::json> read_log(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("A small ResNet learns the synthesized dataset to high validation accuracy",
          "[exec][train]") {
  TempDir dir("learn");
  TrainConfig c = small_run(synth_dataset(dir.path), dir.path / "run");
  std::vector<std::string> lines;
  const TrainSummary s = train(c, cpu(), [&](const std::string& l) { lines.push_back(l); });
  REQUIRE(s.finished);
  REQUIRE(s.steps == 6 * (1000 / 32));
  REQUIRE(s.epochs.size() == 6);
  // Chance is 10%; the classes differ in hue and shape, which a ResNet separates easily.
  CHECK(s.epochs.back().top1 >= 0.9);
  CHECK(s.epochs.back().top5 >= s.epochs.back().top1);
  CHECK(s.epochs.back().train_loss < s.epochs.front().train_loss / 2);

  // The outputs the run promises.
  const auto log = read_log(c.out / "log.jsonl");
  long long steps = 0, vals = 0;
  for (const auto& r : log) {
    if (r.value("type", "") == "val") { ++vals; continue; }
    REQUIRE(r.at("step") == steps++);
    REQUIRE(r.at("compute_s").get<double>() > 0);
    REQUIRE(r.at("data_wait_s").get<double>() >= 0);
    REQUIRE(std::isfinite(r.at("loss").get<double>()));
  }
  REQUIRE(steps == s.steps);
  REQUIRE(vals == 6);
  const auto trace = nlohmann::json::parse(slurp(c.out / "trace.json"));
  int backward_spans = 0;
  for (const auto& e : trace.at("traceEvents"))
    if (e.at("ph") == "X" && e.at("name").get<std::string>().starts_with("backward "))
      ++backward_spans;
  // One span per layer with parameters: 9 convs (the stem, 2 per block x 3, 2 downsample convs),
  // 9 batch norms (one per conv), the fc.
  CHECK(backward_spans == 1 + 6 + 2 + 1 + 6 + 2 + 1);
  const auto summary = nlohmann::json::parse(slurp(c.out / "summary.json"));
  CHECK(summary.at("finished") == true);
  CHECK(fs::exists(c.out / "weights" / "fc.weight.npy"));
  {
    // torch's counter of training forwards: one per step here (one micro-batch), its last 8 bytes.
    const std::string counter = slurp(c.out / "weights" / "bn1.num_batches_tracked.npy");
    REQUIRE(counter.size() > 8);
    std::int64_t forwards = 0;
    std::memcpy(&forwards, counter.data() + counter.size() - 8, 8);
    CHECK(forwards == s.steps * c.micro_batches);
  }
  CHECK(fs::exists(c.out / "checkpoint.basin"));
  bool progress = false;
  for (const auto& l : lines) progress |= l.find("top-1") != std::string::npos;
  CHECK(progress);
}

TEST_CASE("A resumed run ends with the uninterrupted run's weights", "[exec][train]") {
  TempDir dir("resume");
  const fs::path data = synth_dataset(dir.path);
  TrainConfig whole = small_run(data, dir.path / "whole");
  whole.epochs = 2;
  const TrainSummary uninterrupted = train(whole, cpu());

  TrainConfig part = whole;
  part.out = dir.path / "parts";
  part.stop_after = 40;  // mid-epoch: 31 steps per epoch
  TrainSummary first = train(part, cpu());
  REQUIRE_FALSE(first.finished);
  REQUIRE(first.steps == 40);
  part.stop_after = -1;
  part.resume = true;
  TrainSummary second = train(part, cpu());
  REQUIRE(second.finished);
  REQUIRE(second.steps == 62);
  // The second epoch straddles the stop (steps 31..39 before it): its mean loss is over all 31
  // of its steps, the uninterrupted run's to the bit, and the seconds count both sessions. The
  // first epoch, run before the stop, is the summary's too, as the log recorded it.
  REQUIRE(second.epochs.size() == 2);
  REQUIRE(second.epochs.back().train_loss == uninterrupted.epochs.back().train_loss);
  REQUIRE(second.epochs.front().epoch == 0);
  REQUIRE(second.epochs.front().top1 == uninterrupted.epochs.front().top1);
  REQUIRE_THAT(second.epochs.front().train_loss, WithinRel(uninterrupted.epochs.front().train_loss, 1e-12));
  REQUIRE(second.seconds > first.seconds);

  Net a(network_for(whole, 10), cpu(), whole.batch), b(network_for(whole, 10), cpu(), whole.batch);
  load_state(a, whole.out / "weights");
  load_state(b, part.out / "weights");
  size_t differ = 0;
  for (size_t i = 0; i < a.params().size(); ++i) differ += a.params()[i] != b.params()[i];
  for (size_t i = 0; i < a.buffers().size(); ++i) differ += a.buffers()[i] != b.buffers()[i];
  CHECK(differ == 0);

  // The log reads as one run: every step once, in order.
  long long next = 0;
  for (const auto& r : read_log(part.out / "log.jsonl"))
    if (!r.contains("type")) REQUIRE(r.at("step") == next++);
  REQUIRE(next == 62);

  // The recipe states warmup's start, and a checkpoint that wrote -1 for base_lr resumes.
  {
    const auto summary = nlohmann::json::parse(slurp(part.out / "summary.json"));
    REQUIRE(whole.schedule.warmup_start_lr < 0);  // unset: the run starts warmup at base_lr
    REQUIRE(summary.at("recipe").at("warmup_start_lr") == whole.schedule.base_lr);
    // Rewrite the checkpoint as basin wrote it before the recipe stated the start.
    const fs::path checkpoint = part.out / "checkpoint.basin";
    Net net(network_for(part, 10), cpu(), part.batch);
    std::vector<float> velocity(net.params().size());
    RunState state = read_checkpoint(checkpoint, net, velocity);
    auto recipe = nlohmann::json::parse(state.recipe);
    recipe["warmup_start_lr"] = -1;
    state.recipe = recipe.dump();
    write_checkpoint(checkpoint, net, velocity, state);
    TrainConfig again = part;
    REQUIRE(train(again, cpu()).finished);  // finished already: it only compares the recipes
    // A start stated above the peak (global batch 32 of base batch 32: the peak is base_lr) is
    // the peak, where the saved run started too: the same recipe (a --plan auto run states
    // base_lr, its plan file the peak).
    again.schedule.warmup_start_lr = whole.schedule.base_lr * 4;
    REQUIRE(train(again, cpu()).finished);
    again.schedule.warmup_start_lr = whole.schedule.base_lr / 2;
    REQUIRE_THROWS_WITH(train(again, cpu()), HasText("warmup_start_lr"));
  }

  // Interrupted in each epoch's validation, just after its log record: the checkpoint written
  // before the validation resumes it (the second time at the run's end, which then writes the
  // weights and summary), and the run ends as the uninterrupted one did, one record per epoch.
  {
    TrainConfig cut = whole;
    cut.out = dir.path / "cut";
    struct Interrupt {};
    auto interrupt_at = [](std::string start) {
      return [start](const std::string& line) {
        if (line.starts_with(start)) throw Interrupt{};
      };
    };
    REQUIRE_THROWS_AS(train(cut, cpu(), interrupt_at("epoch 1/2: train loss")), Interrupt);
    cut.resume = true;
    REQUIRE_THROWS_AS(train(cut, cpu(), interrupt_at("epoch 2/2: train loss")), Interrupt);
    REQUIRE_FALSE(fs::exists(cut.out / "summary.json"));
    std::vector<std::string> said;
    const TrainSummary resumed = train(cut, cpu(), [&](const std::string& l) { said.push_back(l); });
    REQUIRE(resumed.finished);
    bool told = false;
    for (const auto& l : said) told |= l.find("before its epoch's validation") != std::string::npos;
    CHECK(told);
    REQUIRE(resumed.epochs.size() == 2);
    CHECK(resumed.epochs.front().top1 == uninterrupted.epochs.front().top1);
    CHECK(resumed.epochs.front().train_loss == uninterrupted.epochs.front().train_loss);
    CHECK(resumed.epochs.back().top1 == uninterrupted.epochs.back().top1);
    CHECK(resumed.epochs.back().train_loss == uninterrupted.epochs.back().train_loss);
    int vals = 0;
    for (const auto& r : read_log(cut.out / "log.jsonl")) vals += r.value("type", "") == "val";
    CHECK(vals == 2);
    Net c(network_for(whole, 10), cpu(), whole.batch);
    load_state(c, cut.out / "weights");
    size_t cut_differ = 0;
    for (size_t i = 0; i < a.params().size(); ++i) cut_differ += a.params()[i] != c.params()[i];
    for (size_t i = 0; i < a.buffers().size(); ++i) cut_differ += a.buffers()[i] != c.buffers()[i];
    CHECK(cut_differ == 0);
  }

  // A run ending inside an epoch whose summary was lost: written again with that partial epoch,
  // whose log record stays.
  {
    TrainConfig partial = whole;
    partial.out = dir.path / "partial";
    partial.epochs = 1.5;
    const TrainSummary first_time = train(partial, cpu());
    REQUIRE(first_time.epochs.size() == 2);
    fs::remove(partial.out / "summary.json");
    partial.resume = true;
    const TrainSummary again = train(partial, cpu());
    REQUIRE(again.epochs.size() == 2);
    CHECK(again.epochs.back().top1 == first_time.epochs.back().top1);
    const auto rewritten = nlohmann::json::parse(slurp(partial.out / "summary.json"));
    CHECK(rewritten.at("epochs").size() == 2);
    int vals = 0;
    for (const auto& r : read_log(partial.out / "log.jsonl")) vals += r.value("type", "") == "val";
    CHECK(vals == 2);

    // Extended to 2 epochs and killed before its summary: the 1.5 epochs' summary left standing
    // is not taken for the longer run's, which writes its own.
    const std::string shorter = slurp(partial.out / "summary.json");
    partial.epochs = 2;
    REQUIRE(train(partial, cpu()).steps == 62);
    std::ofstream(partial.out / "summary.json") << shorter;
    const TrainSummary extended = train(partial, cpu());
    CHECK(extended.steps == 62);
    CHECK(nlohmann::json::parse(slurp(partial.out / "summary.json")).at("steps") == 62);
  }

  SECTION("a run refuses to overwrite a checkpoint and to resume with other settings") {
    TrainConfig fresh = whole;
    REQUIRE_THROWS_WITH(train(fresh, cpu()), HasText("--resume"));
    TrainConfig other = whole;
    other.resume = true;
    other.batch = 16;
    REQUIRE_THROWS_WITH(train(other, cpu()), HasText("batch = 32"));
  }
}

TEST_CASE("Checkpoints round-trip and refuse damage", "[exec][train]") {
  TempDir dir("checkpoint");
  auto shape = model::ResNetShape{.blocks = {1}, .width = 4, .image_size = 8, .classes = 3};
  Net net(model::resnet(shape), cpu(), 2);
  net.init({.seed = 3});
  std::vector<float> velocity(net.params().size());
  for (size_t i = 0; i < velocity.size(); ++i) velocity[i] = 0.001f * static_cast<float>(i);
  const fs::path path = dir.path / "c.basin";
  write_checkpoint(path, net, velocity,
                   {.step = 17, .position = {2, 64}, .recipe = "{}",
                    .epoch = {.loss_sum = 12.5, .finite_steps = 5, .images = 160, .seconds = 0.75}, .seconds = 9.5,
                    .validation_pending = true});

  Net other(model::resnet(shape), cpu(), 2);
  std::vector<float> v2(velocity.size());
  const RunState st = read_checkpoint(path, other, v2);
  REQUIRE(st.step == 17);
  REQUIRE(st.epoch.loss_sum == 12.5);
  REQUIRE(st.epoch.finite_steps == 5);
  REQUIRE(st.epoch.images == 160);
  REQUIRE(st.epoch.seconds == 0.75);
  REQUIRE(st.seconds == 9.5);
  REQUIRE(st.validation_pending);
  REQUIRE(st.position == data::Position{2, 64});
  REQUIRE(std::equal(net.params().begin(), net.params().end(), other.params().begin()));
  REQUIRE(std::equal(net.buffers().begin(), net.buffers().end(), other.buffers().begin()));
  REQUIRE(v2 == velocity);

  SECTION("a flipped byte") {
    std::string bytes = slurp(path);
    bytes[bytes.size() / 2] ^= 1;
    std::ofstream(path, std::ios::binary) << bytes;
    REQUIRE_THROWS_WITH(read_checkpoint(path, other, v2), HasText("checksum"));
  }
  SECTION("a truncated file") {
    fs::resize_file(path, fs::file_size(path) / 2);
    REQUIRE_THROWS_AS(read_checkpoint(path, other, v2), CheckpointError);
  }
  SECTION("another network") {
    Net bigger(model::resnet(model::ResNetShape{.blocks = {1}, .width = 8, .image_size = 8, .classes = 3}),
               cpu(), 2);
    std::vector<float> v3(bigger.params().size());
    REQUIRE_THROWS_WITH(read_checkpoint(path, bigger, v3), HasText("parameters"));
  }
  SECTION("not a checkpoint") {
    std::ofstream(path) << "hello";
    REQUIRE_THROWS_WITH(read_checkpoint(path, other, v2), HasText("not a basin checkpoint"));
  }
  // Nothing but the checkpoint itself in the directory: no temporary file left behind.
  REQUIRE(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

TEST_CASE("The input stage in the backend trains as the loader's float path does", "[exec][train]") {
  // The same run twice on the CPU backend: once with float batches from the loader's threads,
  // once with raw batches (the loader only decodes) staged by Backend::stage_input, the kernels'
  // input_stage_cpu. Its pixels equal the float path's within 1e-6 (tests/data/raw_loader_test.cc
  // says why, and saw them identical), and oneDNN is deterministic at a fixed thread count, so
  // the losses are expected identical; asserted within 1e-5 relative, which leaves room for a
  // one-ulp weight difference the input bound allows (31 steps do not amplify 1e-7 beyond it).
  // Validation (Resize + CenterCrop, a short last batch padded with zeros: 200 images in 32s)
  // goes through the raw path too.
  TempDir dir("input-stage");
  const fs::path data = synth_dataset(dir.path);
  TrainConfig floats = small_run(data, dir.path / "floats");
  floats.epochs = 1;
  floats.input_stage = InputStage::cpu;
  TrainConfig raw = floats;
  raw.out = dir.path / "raw";
  raw.input_stage = InputStage::device;
  std::vector<std::string> float_lines, raw_lines;
  const TrainSummary a = train(floats, cpu(), [&](const std::string& l) { float_lines.push_back(l); });
  const TrainSummary b = train(raw, cpu(), [&](const std::string& l) { raw_lines.push_back(l); });
  REQUIRE(!float_lines.empty());
  REQUIRE(!raw_lines.empty());
  CHECK(float_lines.front().find("input stage in the loader") != std::string::npos);
  CHECK(raw_lines.front().find("input stage in the backend") != std::string::npos);
  REQUIRE(a.steps == 31);
  REQUIRE(b.steps == 31);
  const auto la = read_log(floats.out / "log.jsonl"), lb = read_log(raw.out / "log.jsonl");
  REQUIRE(la.size() == lb.size());
  int identical = 0, steps = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    CAPTURE(i);
    REQUIRE(la[i].value("type", "") == lb[i].value("type", ""));
    const double x = la[i].at("loss").get<double>(), y = lb[i].at("loss").get<double>();
    REQUIRE_THAT(y, WithinRel(x, 1e-5));
    identical += x == y;
    ++steps;
  }
  REQUIRE(a.epochs.size() == 1);
  REQUIRE(b.epochs.size() == 1);
  REQUIRE_THAT(b.epochs[0].val_loss, WithinRel(a.epochs[0].val_loss, 1e-5));
  REQUIRE(b.epochs[0].top1 == a.epochs[0].top1);
  WARN("identical losses (train steps and validation): " << identical << " of " << steps);
}

TEST_CASE("Unreadable files are skipped and counted and the run goes on", "[exec][train]") {
  TempDir dir("corrupt");
  const fs::path data = synth_dataset(dir.path);
  const fs::path cls = data / "train" / "c000_red_disc_solid";
  std::ofstream(cls / "zz_not_a_jpeg.JPEG") << "this is text";
  const std::string jpeg = slurp(*fs::directory_iterator(cls));
  std::ofstream(cls / "zz_truncated.JPEG", std::ios::binary) << jpeg.substr(0, jpeg.size() / 3);
  TrainConfig c = small_run(data, dir.path / "run");
  c.epochs = 1;
  c.validate = false;
  std::vector<std::string> warnings;
  const TrainSummary s = train(c, cpu(), [&](const std::string& l) {
    if (l.starts_with("warning")) warnings.push_back(l);
  });
  REQUIRE(s.finished);
  REQUIRE(s.skipped_files == 2);
  REQUIRE(warnings.size() == 2);
  bool named = false;
  for (const auto& w : warnings) named |= w.find("zz_not_a_jpeg.JPEG") != std::string::npos;
  REQUIRE(named);
}

TEST_CASE("A diverging loss stops the run and keeps the last good checkpoint", "[exec][train]") {
  TempDir dir("nan");
  TrainConfig c = small_run(synth_dataset(dir.path), dir.path / "run");
  c.schedule.base_lr = 1e12;  // the weights blow up within a few steps
  c.schedule.warmup_epochs = 0;
  c.checkpoint_every = 1;
  c.validate = false;
  REQUIRE_THROWS_AS(train(c, cpu()), Diverged);
  const auto log = read_log(c.out / "log.jsonl");
  REQUIRE(log.back().at("type") == "diverged");
  const long long bad_step = log.back().at("step");
  REQUIRE(bad_step >= 1);
  Net net(network_for(c, 10), cpu(), c.batch);
  std::vector<float> v(net.params().size());
  const RunState st = read_checkpoint(c.out / "checkpoint.basin", net, v);
  REQUIRE(st.step == bad_step);  // the state before the step whose loss was not finite
}

#endif  // BASIN_HAVE_DNNL
