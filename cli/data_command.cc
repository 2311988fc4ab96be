// `basin data`: `synth` writes a small learnable ImageNet-layout JPEG dataset; `load` scans an
// ImageNet-layout tree and runs the input pipeline over it for a few batches, printing what it
// found and how fast the pipeline went (the measured decode rate `basin sim --decode-rate` takes).
#include "commands.h"

#include <basin/data.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

namespace basin::cli {
namespace {

struct SynthOptions {
  std::string out;
  data::SynthConfig config;
  std::string size = "64";
  bool force = false;
  bool quiet = false;
};

struct LoadOptions {
  std::string root;
  std::string split = "train";
  int batch_size = 32;
  int batches = 10;
  int threads = 2;
  int size = 224;
  std::uint64_t seed = 0;
  int rank = 0, world_size = 1;
  bool fast_decode = false;
  bool decode_only = false;
};

// "S" for S x S or "WxH".
void parse_size(const std::string& text, int& width, int& height) {
  size_t x = text.find('x');
  try {
    size_t used = 0;
    if (x == std::string::npos) {
      width = height = std::stoi(text, &used);
      if (used == text.size()) return;
    } else {
      width = std::stoi(text.substr(0, x), &used);
      if (used == x) {
        height = std::stoi(text.substr(x + 1), &used);
        if (used == text.size() - x - 1) return;
      }
    }
  } catch (const std::exception&) {
  }
  throw data::InputError("--size", "", "S or WxH in pixels (64, 500x375), got '" + text + "'");
}

int run_synth(SynthOptions o) {
  parse_size(o.size, o.config.width, o.config.height);
  const bool tty = ::isatty(2);
  int last_percent = -1;
  auto progress = [&](int done, int total) {
    // On a terminal one line redrawn each percent; into a file or pipe a line each 10%.
    int percent = 100 * done / total;
    if (!tty && done != total) percent -= percent % 10;
    if (o.quiet || (percent == last_percent && done != total)) return;
    last_percent = percent;
    std::fprintf(stderr, "%sbasin data synth: %d/%d images (%d%%)%s", tty ? "\r" : "", done, total,
                 percent, tty && done != total ? "" : "\n");
  };
  auto t0 = std::chrono::steady_clock::now();
  data::write_synth_dataset(o.out, o.config, o.force, progress);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s: %d classes, %d train and %d val images of %dx%d in %.1f s\n", o.out.c_str(),
              o.config.classes, o.config.classes * o.config.train_per_class,
              o.config.classes * o.config.val_per_class, o.config.width, o.config.height, s);
  return 0;
}

int run_load(const LoadOptions& o) {
  if (o.split != "train" && o.split != "val")
    throw data::InputError("--split", "", "train or val, got '" + o.split + "'");
  for (auto [flag, value] : {std::pair{"--batch-size", o.batch_size}, std::pair{"--batches", o.batches},
                             std::pair{"--threads", o.threads}, std::pair{"--size", o.size},
                             std::pair{"--world-size", o.world_size}})
    if (value < 1) throw data::InputError(flag, "", "at least 1, got " + std::to_string(value));
  // Past this a batch buffer does not fit in memory (--size 100000 asked for terabytes and died
  // of std::bad_alloc); synth writes images up to the same side.
  if (o.size > 8192) throw data::InputError("--size", "", "1 to 8192 pixels, got " + std::to_string(o.size));
  if (o.rank < 0 || o.rank >= o.world_size)
    throw data::InputError("--rank", "", "0 to --world-size - 1, got " + std::to_string(o.rank));
  data::ImageNetLayout layout = data::open_imagenet(o.root);
  std::printf("%s: %zu classes, %zu train and %zu val images\n", o.root.c_str(), layout.train.classes.size(),
              layout.train.samples.size(), layout.val.samples.size());
  const data::ImageFolder& folder = o.split == "train" ? layout.train : layout.val;
  if (folder.samples.empty()) throw data::InputError(o.root, o.split + "/", "at least one image, found none");
  data::LoaderConfig cfg;
  cfg.batch_size = o.batch_size;
  cfg.threads = o.threads;
  cfg.seed = o.seed;
  cfg.rank = o.rank;
  cfg.world_size = o.world_size;
  cfg.shuffle = o.split == "train";
  cfg.transform.kind = o.split == "train" ? data::Transform::Kind::train : data::Transform::Kind::val;
  cfg.transform.train.output = o.size;
  cfg.transform.val.crop = o.size;
  cfg.transform.val.resize = o.size * 256 / 224;
  cfg.transform.fast_decode = o.fast_decode;
  if (o.decode_only) cfg.output = data::LoaderOutput::raw;
  auto t0 = std::chrono::steady_clock::now();
  data::Loader loader(folder.samples, cfg);
  for (int i = 0; i < o.batches; ++i) loader.next();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  data::LoaderStats st = loader.stats();
  data::Position p = loader.position();
  std::printf("%s: %lld batches of up to %d (%lld images, %dx%d) in %.3f s: %.0f images/s on %d threads "
              "(%.0f per thread)\n",
              o.split.c_str(), static_cast<long long>(st.batches), o.batch_size, static_cast<long long>(st.images),
              o.size, o.size, s, st.images / s, o.threads, st.images / s / o.threads);
  if (o.decode_only)
    std::printf("decode only: the regions the GPU input stage crops, resamples and normalizes "
                "(basin train --device gpu); the per-thread rate is basin sim/plan's --decode-rate for "
                "such a run\n");
  std::printf("waited for data %.3f s; skipped %zu unreadable file(s); position: epoch %lld, sample %lld of %lld\n",
              st.wait_seconds, st.skipped_files.size(), static_cast<long long>(p.epoch),
              static_cast<long long>(p.next_sample), static_cast<long long>(loader.shard_size()));
  return 0;
}

}  // namespace

std::function<int()> add_data_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("data", "ImageNet-layout JPEG datasets: write a synthetic one, run the input pipeline");
  cmd->require_subcommand(1);

  auto s = std::make_shared<SynthOptions>();
  CLI::App* synth = cmd->add_subcommand("synth", "Write a small learnable ImageNet-layout JPEG dataset");
  synth->add_option("--out", s->out, "Directory to create (root of train/ and val/)")->required();
  synth->add_option("--classes", s->config.classes, "Number of classes (1..128)")->capture_default_str();
  synth->add_option("--train-per-class", s->config.train_per_class, "Training images per class")->capture_default_str();
  synth->add_option("--val-per-class", s->config.val_per_class, "Validation images per class")->capture_default_str();
  synth->add_option("--size", s->size, "Image size: S (square) or WxH, e.g. 500x375")->capture_default_str();
  synth->add_option("--seed", s->config.seed, "Random seed: the same seed writes the same files")
      ->check(whole_number())
      ->capture_default_str();
  synth->add_option("--quality", s->config.quality, "JPEG quality (1..100)")->capture_default_str();
  synth->add_flag("--force", s->force, "Replace an existing non-empty --out");
  synth->add_flag("--quiet", s->quiet, "No progress lines");

  auto l = std::make_shared<LoadOptions>();
  CLI::App* load = cmd->add_subcommand("load", "Scan an ImageNet-layout tree and run the input pipeline over it");
  load->add_option("--root", l->root, "Dataset root holding train/ and val/")->required();
  load->add_option("--split", l->split, "train (RandomResizedCrop + flip) or val (resize + center crop)")->capture_default_str();
  load->add_option("--batch-size", l->batch_size, "Images per batch")->capture_default_str();
  load->add_option("--batches", l->batches, "Batches to load")->capture_default_str();
  load->add_option("--threads", l->threads, "Decoding threads")->capture_default_str();
  load->add_option("--size", l->size, "Output side in pixels (val resizes to size * 256/224 first)")->capture_default_str();
  load->add_option("--seed", l->seed, "Shuffle and augmentation seed")->check(whole_number())->capture_default_str();
  load->add_option("--rank", l->rank, "This rank's shard")->capture_default_str();
  load->add_option("--world-size", l->world_size, "Number of shards")->capture_default_str();
  load->add_flag("--fast-decode", l->fast_decode, "Fast integer IDCT and plain chroma upsampling");
  load->add_flag("--decode-only", l->decode_only,
                 "Decode the regions only, as when the GPU input stage does the rest (basin train --device gpu)");

  return [s, l, synth, load]() -> int {
    if (synth->parsed()) return run_synth(*s);
    if (load->parsed()) return run_load(*l);
    return 2;
  };
}

}  // namespace basin::cli
