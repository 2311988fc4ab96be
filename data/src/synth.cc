// Synthetic ImageNet-layout datasets (`basin data synth`): small, learnable, reproducible.
//
// A class is a hue, a shape (or a striped patch at an orientation) and a fill. Hue and shape
// both change between neighbouring labels, so even a 4-class set needs a network to look at both
// colour and form. Every image draws its own object position, size, rotation, colour shade,
// background tint and gradient, and pixel noise, from a stream seeded by (seed, split, label,
// index): the same command writes the same files. The dataset appears under its name only when
// complete: it is written into a hidden sibling directory and renamed at the end.
#include "jpeg_internal.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>

namespace basin::data {
namespace {

namespace fs = std::filesystem;

constexpr std::array<double, 8> kHues{0, 30, 58, 120, 180, 220, 275, 320};  // degrees
constexpr std::array<const char*, 8> kHueNames{"red",  "orange", "yellow", "green",
                                               "cyan", "blue",   "purple", "magenta"};
enum class Shape { disc, ring, square, triangle, cross, stripes0, stripes60, stripes120 };
constexpr std::array<const char*, 8> kShapeNames{"disc",  "ring",     "square",    "triangle",
                                                 "cross", "stripes0", "stripes60", "stripes120"};

struct ClassLook {
  int hue, shape;
  bool checkered;
};

// (hue, shape) = (l mod 8, (l mod 8 + l div 8) mod 8) runs through all 64 pairs for l < 64.
ClassLook look_of(int label) {
  return {label % 8, (label % 8 + label / 8 % 8) % 8, label >= 64};
}

std::array<double, 3> hsv_to_rgb(double h, double s, double v) {
  h = std::fmod(std::fmod(h, 360.0) + 360.0, 360.0) / 60.0;
  double c = v * s, x = c * (1 - std::fabs(std::fmod(h, 2.0) - 1)), m = v - c;
  std::array<double, 3> rgb{};
  switch (static_cast<int>(h)) {
    case 0: rgb = {c, x, 0}; break;
    case 1: rgb = {x, c, 0}; break;
    case 2: rgb = {0, c, x}; break;
    case 3: rgb = {0, x, c}; break;
    case 4: rgb = {x, 0, c}; break;
    default: rgb = {c, 0, x}; break;
  }
  for (double& ch : rgb) ch = 255.0 * (ch + m);
  return rgb;
}

// Object-local coordinates, in units of the object radius. 0: outside, 1: object colour,
// 2: the dark squares of a checkered fill.
int paint(Shape shape, bool checkered, double u, double v) {
  const double r2 = u * u + v * v;
  bool inside = false;
  switch (shape) {
    case Shape::disc: inside = r2 <= 1; break;
    case Shape::ring: inside = r2 <= 1 && r2 >= 0.55 * 0.55; break;
    case Shape::square: inside = std::fabs(u) <= 0.8 && std::fabs(v) <= 0.8; break;
    case Shape::triangle: inside = v <= 0.5 && v >= -1 && std::fabs(u) <= (v + 1) * 0.577; break;
    case Shape::cross:
      inside = (std::fabs(u) <= 0.3 && std::fabs(v) <= 1) || (std::fabs(v) <= 0.3 && std::fabs(u) <= 1);
      break;
    default: {
      double angle = (shape == Shape::stripes0 ? 0 : shape == Shape::stripes60 ? 60 : 120) *
                     std::numbers::pi / 180;
      double d = u * std::cos(angle) + v * std::sin(angle);
      inside = r2 <= 1 && std::sin(2 * std::numbers::pi * 2.0 * d) > 0;  // two stripes per radius
    }
  }
  if (!inside) return 0;
  if (checkered && (static_cast<int>(std::floor(u * 3)) + static_cast<int>(std::floor(v * 3))) % 2 != 0) return 2;
  return 1;
}

double gaussian(Rng& rng) {  // Box-Muller
  double u1 = std::max(rng.uniform(), 1e-300), u2 = rng.uniform();
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
}

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f.get()) != bytes.size())
    throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(errno));
  if (std::fclose(f.release()) != 0)
    throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(errno));
}

void check(const SynthConfig& c) {
  if (c.classes < 1 || c.classes > kMaxSynthClasses)
    throw InputError("--classes", "", "1 to " + std::to_string(kMaxSynthClasses) + ", got " + std::to_string(c.classes));
  if (c.train_per_class < 1)
    throw InputError("--train-per-class", "", "at least 1, got " + std::to_string(c.train_per_class));
  if (c.val_per_class < 1)
    throw InputError("--val-per-class", "", "at least 1, got " + std::to_string(c.val_per_class));
  if (c.width < 8 || c.height < 8 || c.width > 8192 || c.height > 8192)
    throw InputError("--size", "", "8 to 8192 pixels per side, got " + std::to_string(c.width) + "x" +
                                       std::to_string(c.height));
  if (c.quality < 1 || c.quality > 100)
    throw InputError("--quality", "", "1 to 100, got " + std::to_string(c.quality));
}

}  // namespace

std::string synth_class_name(int label) {
  ClassLook look = look_of(label);
  char name[64];
  std::snprintf(name, sizeof name, "c%03d_%s_%s_%s", label, kHueNames[look.hue], kShapeNames[look.shape],
                look.checkered ? "checkered" : "solid");
  return name;
}

Image render_synth_image(int label, int width, int height, std::uint64_t image_seed) {
  ClassLook look = look_of(label);
  Rng rng{image_seed};
  // Background: a low-saturation tint with a linear gradient in a random direction.
  double level = rng.uniform(60, 190);
  std::array<double, 3> base{level + rng.uniform(-25, 25), level + rng.uniform(-25, 25),
                             level + rng.uniform(-25, 25)};
  double grad_angle = rng.uniform(0, 2 * std::numbers::pi), grad = rng.uniform(-35, 35);
  // The object: where, how big, how turned, which shade of the class hue.
  const double side = std::min(width, height);
  double cx = width * rng.uniform(0.3, 0.7), cy = height * rng.uniform(0.3, 0.7);
  double radius = side * rng.uniform(0.22, 0.38);
  double turn = rng.uniform(-12, 12) * std::numbers::pi / 180;
  std::array<double, 3> colour =
      hsv_to_rgb(kHues[look.hue] + rng.uniform(-6, 6), rng.uniform(0.7, 1.0), rng.uniform(0.75, 1.0));
  std::array<double, 3> dark{colour[0] * 0.35, colour[1] * 0.35, colour[2] * 0.35};
  const double noise = rng.uniform(4, 12);
  const double ct = std::cos(turn), st = std::sin(turn);
  const Shape shape = static_cast<Shape>(look.shape);

  Image img{width, height, std::vector<std::uint8_t>(static_cast<size_t>(width) * height * 3)};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      double g = grad * ((x / double(width) - 0.5) * std::cos(grad_angle) +
                         (y / double(height) - 0.5) * std::sin(grad_angle));
      std::array<double, 3> px{base[0] + g, base[1] + g, base[2] + g};
      // 2x2 supersampling for smooth edges.
      std::array<double, 3> sum{0, 0, 0};
      for (int s = 0; s < 4; ++s) {
        double dx = x + 0.25 + 0.5 * (s & 1) - cx, dy = y + 0.25 + 0.5 * (s >> 1) - cy;
        double u = (dx * ct + dy * st) / radius, v = (-dx * st + dy * ct) / radius;
        int p = paint(shape, look.checkered, u, v);
        const std::array<double, 3>& c = p == 0 ? px : p == 1 ? colour : dark;
        for (int ch = 0; ch < 3; ++ch) sum[ch] += c[ch];
      }
      for (int ch = 0; ch < 3; ++ch) {
        double value = sum[ch] / 4 + noise * gaussian(rng);
        img.rgb[(static_cast<size_t>(y) * width + x) * 3 + ch] =
            static_cast<std::uint8_t>(std::clamp(std::lround(value), 0L, 255L));
      }
    }
  }
  return img;
}

namespace {

// ".NAME.partial-" (and the process id after it) beside the target: where a dataset is written
// before it is renamed into place; ".NAME.old-" where the dataset it replaces waits to go.
std::string side_prefix(const fs::path& target, const char* kind) {
  std::string name = ".";
  name += target.filename().string();
  name += kind;
  return name;
}

// A run killed while writing (SIGKILL, power loss) leaves its ".NAME.partial-PID" behind; the next
// run for the same target removes those whose process is gone, so that nothing piles up.
void remove_abandoned_partials(const fs::path& parent, const fs::path& target) {
  const std::string prefix = side_prefix(target, ".partial-");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const long pid = std::stol(digits);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH)
      fs::remove_all(entry.path(), ec);
  }
}

}  // namespace

void write_synth_dataset(const fs::path& out, const SynthConfig& c, bool force,
                         const std::function<void(int, int)>& progress) {
  check(c);
  std::error_code ec;
  if (out.empty()) throw InputError("--out", "", "a directory to write the dataset to");
  if (fs::exists(out, ec)) {
    if (!fs::is_directory(out, ec))
      throw InputError(out.string(), "", "a directory to write the dataset to (it is a file)");
    if (!fs::is_empty(out, ec) && !force)
      throw InputError(out.string(), "", "an empty or missing directory (it is not empty; --force replaces it)");
  }
  fs::path target = fs::absolute(out).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();
  fs::path parent = target.parent_path();
  if (!fs::is_directory(parent, ec))
    throw InputError(out.string(), "", "a location whose parent directory exists (" + parent.string() + " does not)");
  remove_abandoned_partials(parent, target);
  fs::path tmp = parent / (side_prefix(target, ".partial-") + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec))
    throw InputError(out.string(), "", "a writable location: " + ec.message());
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ignored;
      if (!dir.empty()) fs::remove_all(dir, ignored);
    }
  } cleanup{tmp};

  const int total = c.classes * (c.train_per_class + c.val_per_class);
  int done = 0;
  for (int split = 0; split < 2; ++split) {
    const char* split_name = split == 0 ? "train" : "val";
    const int per_class = split == 0 ? c.train_per_class : c.val_per_class;
    for (int label = 0; label < c.classes; ++label) {
      const std::string cls = synth_class_name(label);
      fs::path dir = tmp / split_name / cls;
      fs::create_directories(dir);
      for (int i = 0; i < per_class; ++i) {
        Rng seeder = sample_rng(c.seed, split, static_cast<std::int64_t>(label) * 1000003 + i);
        Image img = render_synth_image(label, c.width, c.height, seeder.next());
        char name[96];
        std::snprintf(name, sizeof name, "%s_%s_%06d.JPEG", cls.substr(0, 4).c_str(), split_name, i);
        write_bytes(dir / name, encode_jpeg(img, c.quality));
        if (progress) progress(++done, total);
      }
    }
  }
  // Swap in: an existing (empty, or --force) target moves aside first, then goes.
  fs::path old;
  if (fs::exists(target, ec)) {
    old = parent / (side_prefix(target, ".old-") + std::to_string(::getpid()));
    fs::rename(target, old);
  }
  fs::rename(tmp, target);
  cleanup.dir = old;
}

}  // namespace basin::data
