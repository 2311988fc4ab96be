// The multi-threaded prefetching loader.
//
// The stream of batches is numbered from the start position; batch k's epoch, shard range and
// every sample's random stream follow from k alone, so any worker can build any batch and the
// result is the same whichever thread builds it. Workers claim batch numbers in order but may
// finish out of order; next() hands them out in order. A window bounds how far the workers run
// ahead of the consumer, which bounds memory to `prefetch_batches` batches. A batch holds float
// images or, in raw mode, the decoded source regions (decode_sample); only the per-slot work
// differs, never which sample fills which slot with which random stream.
#include "jpeg_internal.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

namespace basin::data {

std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch,
                                      bool shuffle) {
  std::vector<std::int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle) return order;
  // Fisher-Yates from a stream of its own: position -1 is never a sample's.
  Rng rng = sample_rng(seed, epoch, -1);
  for (std::int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.integer(i + 1)]);
  return order;
}

std::int64_t shard_size(std::int64_t n, int rank, int world_size) {
  return n > rank ? (n - rank + world_size - 1) / world_size : 0;
}

struct Loader::State {
  std::vector<Sample> samples;
  LoaderConfig config;
  std::int64_t shard = 0;
  std::int64_t first_epoch = 0, first_offset = 0;
  std::int64_t batches_first_epoch = 0, batches_per_epoch = 0;

  std::mutex mutex;
  std::condition_variable space, ready_cv;
  bool stop = false;
  std::int64_t next_to_build = 0, consumed = 0;
  std::map<std::int64_t, Batch> ready;
  std::map<std::int64_t, std::exception_ptr> failed;
  std::map<std::int64_t, std::shared_ptr<const std::vector<std::int64_t>>> orders;  // by epoch
  std::set<std::int64_t> bad;  // sample indices known unreadable
  LoaderStats stats;
  Position position;
  std::vector<std::thread> workers;

  struct Span {
    std::int64_t epoch, first, size;
  };

  Span span_of(std::int64_t k) const {
    const std::int64_t B = config.batch_size;
    if (k < batches_first_epoch) {
      std::int64_t first = first_offset + k * B;
      return {first_epoch, first, std::min(B, shard - first)};
    }
    k -= batches_first_epoch;
    std::int64_t first = (k % batches_per_epoch) * B;
    return {first_epoch + 1 + k / batches_per_epoch, first, std::min(B, shard - first)};
  }

  // The position after a batch ending at `end`, moved to the next epoch once nothing (or, with
  // drop_last, no full batch) is left.
  Position normalized(std::int64_t epoch, std::int64_t next) const {
    if (next >= shard || (config.drop_last && shard - next < config.batch_size)) return {epoch + 1, 0};
    return {epoch, next};
  }

  std::shared_ptr<const std::vector<std::int64_t>> order_for(std::int64_t epoch) {
    {
      std::lock_guard lock(mutex);
      auto it = orders.find(epoch);
      if (it != orders.end()) return it->second;
    }
    auto order = std::make_shared<const std::vector<std::int64_t>>(
        epoch_order(static_cast<std::int64_t>(samples.size()), config.seed, epoch, config.shuffle));
    std::lock_guard lock(mutex);
    auto [it, inserted] = orders.emplace(epoch, order);
    // Workers are at most a window of batches apart, so a few recent epochs suffice.
    while (orders.size() > 3) orders.erase(orders.begin());
    return it->second;
  }

  void mark_bad(std::int64_t sample, const std::string& why) {
    {
      std::lock_guard lock(mutex);
      if (!bad.insert(sample).second) return;
      stats.skipped_files.push_back(samples[sample].path);
    }
    std::string message = "skipping " + samples[sample].path + ": " + why;
    if (config.warn) {
      config.warn(message);
    } else {
      std::cerr << "basin data: warning: " + message + "\n";
    }
  }

  bool known_bad(std::int64_t sample) {
    std::lock_guard lock(mutex);
    return bad.count(sample) != 0;
  }

  // One slot: the shard's sample at `slot`, or the next readable one after it (wrapping), read
  // and handed to `load(bytes, rng)` (which throws DecodeError for an unreadable file).
  template <class Load>
  void fill_slot(const std::vector<std::int64_t>& order, std::int64_t epoch, std::int64_t slot,
                 const Load& load, int& label, std::int64_t& sample_index, int& substitutions) {
    const std::int64_t world = config.world_size, rank = config.rank;
    const std::int64_t global = rank + slot * world;
    thread_local std::vector<std::uint8_t> bytes;
    for (std::int64_t tried = 0; tried < shard; ++tried) {
      std::int64_t candidate_slot = (slot + tried) % shard;
      std::int64_t sample = order[static_cast<size_t>(rank + candidate_slot * world)];
      if (known_bad(sample)) continue;
      try {
        bytes = read_file(samples[sample].path);
        // The slot's own stream, whichever sample fills it.
        Rng rng = sample_rng(config.seed, epoch, global);
        load(std::span<const std::uint8_t>(bytes), rng);
        label = samples[sample].label;
        sample_index = sample;
        substitutions += tried != 0;
        return;
      } catch (const DecodeError& e) {
        mark_bad(sample, e.what());
      }
    }
    throw std::runtime_error("no readable JPEG in the shard of rank " + std::to_string(rank) + " (" +
                             std::to_string(shard) + " samples)");
  }

  Batch build(std::int64_t k) {
    Span s = span_of(k);
    auto order = order_for(s.epoch);
    const int size = config.transform.output_size();
    Batch b;
    b.epoch = s.epoch;
    b.first_sample = s.first;
    b.size = static_cast<int>(s.size);
    b.height = b.width = size;
    b.labels.resize(b.size);
    b.samples.resize(b.size);
    b.stand_in.assign(static_cast<size_t>(b.size), 0);
    const Transform& t = config.transform;
    if (config.output == LoaderOutput::raw) {
      b.raw.resize(b.size);
      // Regions are about the output's size to twice it each way; one reallocation at most.
      b.rgb.reserve(static_cast<size_t>(b.size) * size * size * 3 * 2);
      for (int i = 0; i < b.size; ++i) {
        const int before = b.substituted;
        fill_slot(
            *order, s.epoch, s.first + i,
            [&](std::span<const std::uint8_t> jpeg, Rng& rng) { decode_sample(jpeg, t, rng, b.rgb, b.raw[i]); },
            b.labels[i], b.samples[i], b.substituted);
        b.stand_in[static_cast<size_t>(i)] = b.substituted != before;
      }
      return b;
    }
    const size_t per_image = static_cast<size_t>(3) * size * size;
    b.pixels.resize(per_image * b.size);
    for (int i = 0; i < b.size; ++i) {
      const int before = b.substituted;
      fill_slot(
          *order, s.epoch, s.first + i,
          [&](std::span<const std::uint8_t> jpeg, Rng& rng) {
            load_sample(jpeg, t, rng, b.pixels.data() + per_image * i);
          },
          b.labels[i], b.samples[i], b.substituted);
      b.stand_in[static_cast<size_t>(i)] = b.substituted != before;
    }
    return b;
  }

  void work() {
    const std::int64_t window = config.prefetch_batches;
    while (true) {
      std::int64_t k;
      {
        std::unique_lock lock(mutex);
        space.wait(lock, [&] { return stop || next_to_build < consumed + window; });
        if (stop) return;
        k = next_to_build++;
      }
      try {
        Batch b = build(k);
        std::lock_guard lock(mutex);
        ready.emplace(k, std::move(b));
      } catch (...) {
        std::lock_guard lock(mutex);
        failed.emplace(k, std::current_exception());
      }
      ready_cv.notify_all();
    }
  }
};

Loader::Loader(std::vector<Sample> samples, LoaderConfig config, Position start)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  if (config.world_size < 1 || config.rank < 0 || config.rank >= config.world_size)
    throw std::invalid_argument("loader: rank " + std::to_string(config.rank) +
                                " is not in 0..world_size-1 (world_size " +
                                std::to_string(config.world_size) + ")");
  if (config.batch_size < 1) throw std::invalid_argument("loader: batch size must be at least 1");
  if (config.threads < 1) config.threads = 1;
  if (config.prefetch_batches < 1) config.prefetch_batches = 2 * config.threads;
  if (start.epoch < 0 || start.next_sample < 0)
    throw std::invalid_argument("loader: the start position must not be negative");
  s.samples = std::move(samples);
  s.config = std::move(config);
  const LoaderConfig& c = s.config;
  s.shard = data::shard_size(static_cast<std::int64_t>(s.samples.size()), c.rank, c.world_size);
  if (s.shard == 0)
    throw std::invalid_argument("loader: rank " + std::to_string(c.rank) + " gets no samples (" +
                                std::to_string(s.samples.size()) + " samples, world size " +
                                std::to_string(c.world_size) + ")");
  const std::int64_t B = c.batch_size;
  s.batches_per_epoch = c.drop_last ? s.shard / B : (s.shard + B - 1) / B;
  if (s.batches_per_epoch == 0)
    throw std::invalid_argument("loader: with drop_last, a shard of " + std::to_string(s.shard) +
                                " samples holds no batch of " + std::to_string(B));
  const Position p = s.normalized(start.epoch, start.next_sample);
  s.first_epoch = p.epoch;
  s.first_offset = p.next_sample;
  const std::int64_t left = s.shard - p.next_sample;
  s.batches_first_epoch = c.drop_last ? left / B : (left + B - 1) / B;
  s.position = p;
  for (int i = 0; i < c.threads; ++i) s.workers.emplace_back([&s] { s.work(); });
}

Loader::~Loader() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stop = true;
  }
  state_->space.notify_all();
  for (std::thread& t : state_->workers) t.join();
}

Batch Loader::next() {
  State& s = *state_;
  std::unique_lock lock(s.mutex);
  const std::int64_t k = s.consumed;
  auto t0 = std::chrono::steady_clock::now();
  s.ready_cv.wait(lock, [&] { return s.ready.count(k) || s.failed.count(k); });
  s.stats.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (auto f = s.failed.find(k); f != s.failed.end()) std::rethrow_exception(f->second);
  Batch b = std::move(s.ready.at(k));
  s.ready.erase(k);
  ++s.consumed;
  ++s.stats.batches;
  s.stats.images += b.size;
  s.stats.substitutions += b.substituted;
  s.position = s.normalized(b.epoch, b.first_sample + b.size);
  lock.unlock();
  s.space.notify_all();
  return b;
}

Position Loader::position() const {
  std::lock_guard lock(state_->mutex);
  return state_->position;
}

LoaderStats Loader::stats() const {
  std::lock_guard lock(state_->mutex);
  return state_->stats;
}

std::int64_t Loader::shard_size() const { return state_->shard; }
std::int64_t Loader::batches_per_epoch() const { return state_->batches_per_epoch; }

}  // namespace basin::data
