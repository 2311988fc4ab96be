// The loader: batches independent of the thread count, a new order every epoch, disjoint shards
// that cover the epoch, exact resume from a saved position, and unreadable files skipped,
// counted and named.
#include "../catch.h"
#include "data_test_util.h"

#include <map>
#include <mutex>
#include <set>

using namespace basin::data;
using basin::data::test::ScratchDir;

namespace {

// One small synthetic dataset for every test in this file: 4 classes x 10 images of 24 x 20.
const ImageNetLayout& dataset() {
  static ScratchDir dir("loader");
  static ImageNetLayout layout = [] {
    write_synth_dataset(dir.path / "set", {.classes = 4, .train_per_class = 10, .val_per_class = 2,
                                           .width = 24, .height = 20, .seed = 5}, false);
    return open_imagenet(dir.path / "set");
  }();
  return layout;
}

LoaderConfig small_config(int threads, int batch = 6) {
  LoaderConfig c;
  c.transform.train.output = 12;
  c.batch_size = batch;
  c.threads = threads;
  c.seed = 99;
  return c;
}

std::vector<Batch> take(Loader& loader, int n) {
  std::vector<Batch> out;
  for (int i = 0; i < n; ++i) out.push_back(loader.next());
  return out;
}

void require_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    REQUIRE(a[i].epoch == b[i].epoch);
    REQUIRE(a[i].first_sample == b[i].first_sample);
    REQUIRE(a[i].samples == b[i].samples);
    REQUIRE(a[i].labels == b[i].labels);
    REQUIRE(a[i].pixels == b[i].pixels);  // bit for bit
  }
}

}  // namespace

TEST_CASE("batches are the same whatever the thread count", "[data][loader]") {
  const auto& samples = dataset().train.samples;
  // 40 samples in batches of 6: 7 batches per epoch (the last of 4); 16 batches cross two epochs.
  Loader one(samples, small_config(1));
  std::vector<Batch> reference = take(one, 16);
  REQUIRE(one.batches_per_epoch() == 7);
  REQUIRE(reference[6].size == 4);
  REQUIRE(reference[7].epoch == 1);
  for (int threads : {2, 4}) {
    CAPTURE(threads);
    LoaderConfig c = small_config(threads);
    c.prefetch_batches = threads == 4 ? 5 : 1;
    Loader many(samples, c);
    require_same(reference, take(many, 16));
  }
}

TEST_CASE("every epoch is a fresh permutation of the whole dataset", "[data][loader]") {
  const auto& samples = dataset().train.samples;
  Loader loader(samples, small_config(2));
  std::map<std::int64_t, std::vector<std::int64_t>> seen;
  for (Batch& b : take(loader, 14))
    for (int i = 0; i < b.size; ++i) {
      seen[b.epoch].push_back(b.samples[i]);
      REQUIRE(b.labels[i] == samples[b.samples[i]].label);
    }
  REQUIRE(seen.size() == 2);
  for (auto& [epoch, order] : seen) {
    std::set<std::int64_t> distinct(order.begin(), order.end());
    REQUIRE(order.size() == samples.size());
    REQUIRE(distinct.size() == samples.size());
  }
  REQUIRE(seen[0] != seen[1]);
  // Without shuffling, file order every epoch.
  LoaderConfig c = small_config(2);
  c.shuffle = false;
  Loader in_order(samples, c);
  Batch first = in_order.next();
  REQUIRE(first.samples == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("shards are disjoint and cover each epoch and change between epochs", "[data][loader]") {
  const auto& samples = dataset().train.samples;
  const int world = 3;
  // 40 samples over 3 ranks: 14, 13, 13.
  const std::array<std::int64_t, 3> sizes{14, 13, 13};
  std::map<std::int64_t, std::vector<std::set<std::int64_t>>> by_epoch;
  for (int rank = 0; rank < world; ++rank) {
    LoaderConfig c = small_config(2, 5);
    c.rank = rank;
    c.world_size = world;
    Loader loader(samples, c);
    REQUIRE(loader.shard_size() == sizes[rank]);
    for (const Batch& b : take(loader, 2 * static_cast<int>(loader.batches_per_epoch()))) {
      auto& shards = by_epoch[b.epoch];
      shards.resize(world);
      shards[rank].insert(b.samples.begin(), b.samples.end());
    }
  }
  REQUIRE(by_epoch.size() == 2);
  for (auto& [epoch, shards] : by_epoch) {
    std::set<std::int64_t> all;
    size_t total = 0;
    for (int r = 0; r < world; ++r) {
      REQUIRE(static_cast<std::int64_t>(shards[r].size()) == sizes[r]);
      total += shards[r].size();
      all.insert(shards[r].begin(), shards[r].end());
    }
    REQUIRE(total == samples.size());       // no sample in two shards
    REQUIRE(all.size() == samples.size());  // every sample in one
  }
  REQUIRE(by_epoch[0][0] != by_epoch[1][0]);
}

TEST_CASE("a saved position resumes with the same batches", "[data][loader]") {
  const auto& samples = dataset().train.samples;
  for (int already : {3, 6, 7, 9}) {  // mid-epoch, just before and at the epoch's end, next epoch
    CAPTURE(already);
    Loader first(samples, small_config(2));
    take(first, already);
    Position saved = first.position();
    std::vector<Batch> expected = take(first, 8);
    Loader resumed(samples, small_config(3), saved);
    REQUIRE(resumed.position() == saved);
    require_same(expected, take(resumed, 8));
  }
  // A position in the middle of a batch is honoured too: the stream continues from that sample.
  LoaderConfig c = small_config(1);
  Loader from_middle(samples, c, {1, 4});
  Batch b = from_middle.next();
  REQUIRE(b.epoch == 1);
  REQUIRE(b.first_sample == 4);
  REQUIRE(b.samples.front() == epoch_order(40, c.seed, 1, true)[4]);
  // The end of an epoch is the start of the next.
  Loader at_end(samples, c, {0, 40});
  REQUIRE(at_end.position() == Position{1, 0});
}

TEST_CASE("drop_last leaves out the short batch", "[data][loader]") {
  LoaderConfig c = small_config(2);
  c.drop_last = true;
  Loader loader(dataset().train.samples, c);
  REQUIRE(loader.batches_per_epoch() == 6);
  std::vector<Batch> batches = take(loader, 7);
  for (const Batch& b : batches) REQUIRE(b.size == 6);
  REQUIRE(batches[6].epoch == 1);
  REQUIRE(batches[6].first_sample == 0);
}

TEST_CASE("unreadable files are skipped counted and named and batches stay full", "[data][loader]") {
  ScratchDir dir("corrupt");
  std::vector<Sample> samples = dataset().train.samples;
  std::vector<std::uint8_t> good = read_file(samples[0].path);
  const std::vector<std::string> bad{(dir.path / "empty.JPEG").string(), (dir.path / "text.jpg").string(),
                                     (dir.path / "truncated.JPEG").string(), (dir.path / "png.jpeg").string(),
                                     (dir.path / "missing.JPEG").string()};
  basin::data::test::write_text(bad[0], "");
  basin::data::test::write_text(bad[1], "this is not an image\n");
  basin::data::test::write_file(bad[2], std::vector<std::uint8_t>(good.begin(), good.begin() + good.size() / 2));
  basin::data::test::write_file(bad[3], {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'});
  for (size_t i = 0; i < bad.size(); ++i) samples.push_back({bad[i], static_cast<int>(i % 4)});
  std::mutex m;
  std::vector<std::string> warnings;
  LoaderConfig c = small_config(3);
  c.warn = [&](const std::string& w) {
    std::lock_guard lock(m);
    warnings.push_back(w);
  };
  Loader loader(samples, c);
  // 45 samples: 8 batches per epoch; two epochs.
  std::vector<Batch> batches = take(loader, 16);
  std::set<std::string> used;
  for (const Batch& b : batches) {
    REQUIRE(b.size == (b.first_sample == 42 ? 3 : 6));
    for (std::int64_t s : b.samples) used.insert(samples[s].path);
  }
  for (const std::string& name : bad) REQUIRE_FALSE(used.count(name));
  LoaderStats st = loader.stats();
  REQUIRE(st.skipped_files.size() == bad.size());
  REQUIRE(std::set<std::string>(st.skipped_files.begin(), st.skipped_files.end()) ==
          std::set<std::string>(bad.begin(), bad.end()));
  REQUIRE(warnings.size() == bad.size());  // once per file, not once per epoch
  for (const std::string& name : bad) {
    bool named = false;
    for (const std::string& w : warnings) named = named || w.find(name) != std::string::npos;
    CAPTURE(name);
    REQUIRE(named);
  }
  REQUIRE(st.substitutions == 2 * static_cast<std::int64_t>(bad.size()));  // every bad slot, both epochs
  REQUIRE(st.images == 2 * 45);
  // And the batches still do not depend on the thread count.
  LoaderConfig single = small_config(1);
  single.warn = [](const std::string&) {};
  Loader one(samples, single);
  require_same(batches, take(one, 16));
}

TEST_CASE("the loader reports time spent waiting for data", "[data][loader]") {
  Loader loader(dataset().train.samples, small_config(1));
  LoaderStats before = loader.stats();
  REQUIRE(before.wait_seconds == 0);
  loader.next();  // the first batch cannot be ready yet: one thread must decode six files
  LoaderStats after = loader.stats();
  REQUIRE(after.wait_seconds > 0);
  REQUIRE(after.batches == 1);
  REQUIRE(after.images == 6);
}

TEST_CASE("a loader over nothing readable stops with an error", "[data][loader]") {
  ScratchDir dir("unreadable");
  basin::data::test::write_text(dir.path / "a.JPEG", "no");
  LoaderConfig c = small_config(1, 1);
  c.warn = [](const std::string&) {};
  Loader loader({{(dir.path / "a.JPEG").string(), 0}}, c);
  REQUIRE_THROWS_WITH(loader.next(), Catch::Matchers::Contains("no readable JPEG"));
  REQUIRE_THROWS_AS(Loader({}, small_config(1)), std::invalid_argument);
}
