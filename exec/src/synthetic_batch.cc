// A batch of random images and labels for measuring a step without a dataset: the benchmarks
// against PyTorch and `basin profile` time the network on the same input.
#include <basin/exec.h>

#include <random>

namespace basin::exec {

SyntheticBatch synthetic_batch(int batch, int image_size, int classes, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  SyntheticBatch b;
  b.images.resize(static_cast<size_t>(batch) * 3 * image_size * image_size);
  for (auto& x : b.images) x = normal(rng);
  b.labels.resize(batch);
  for (int& label : b.labels) label = static_cast<int>(rng() % static_cast<unsigned>(classes));
  return b;
}

}  // namespace basin::exec
