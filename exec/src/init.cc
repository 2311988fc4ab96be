// torchvision's ResNet initialization (torchvision/models/resnet.py, ResNet.__init__), from a
// seed, so a run can be repeated and a basin network compared with a torch one built from the
// same weights. The random streams are basin's own (std::mt19937_64), not torch's: equal
// distributions, not equal numbers; comparisons with torch copy the weights across instead.
#include <basin/exec.h>

#include <cmath>
#include <random>
#include <vector>

namespace basin::exec {

void Net::init(const InitOptions& options) {
  std::mt19937_64 rng(options.seed);
  const auto& layers = network_.layers;
  // Drawn on the host, then written into the backend's arrays (device memory on a GPU).
  std::vector<float> host_params(param_count_), host_buffers(buffer_count_);
  for (const ParamInfo& p : param_info_) {
    const model::Layer& l = layers[p.layer];
    float* w = host_params.data() + p.offset;
    switch (l.kind) {
      case model::LayerKind::conv: {
        // kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / fan_out).
        const double fan_out = 1.0 * l.out_channels * l.kernel * l.kernel;
        std::normal_distribution<float> normal(0.f, static_cast<float>(std::sqrt(2.0 / fan_out)));
        for (long long k = 0; k < p.count; ++k) w[k] = normal(rng);
        break;
      }
      case model::LayerKind::batchnorm: {
        const bool gamma = p.name.ends_with(".weight");
        const float value =
            gamma && !(options.zero_init_residual && p.last_bn_of_block) ? 1.f : 0.f;
        std::fill(w, w + p.count, value);
        break;
      }
      case model::LayerKind::fc: {
        // torch.nn.Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) gives weights in
        // +-1/sqrt(fan_in), and the bias takes the same bound.
        const double fan_in = 1.0 * l.in_channels * l.in_h * l.in_w;
        const auto bound = static_cast<float>(1.0 / std::sqrt(fan_in));
        std::uniform_real_distribution<float> uniform(-bound, bound);
        for (long long k = 0; k < p.count; ++k) w[k] = uniform(rng);
        break;
      }
      default:
        break;
    }
  }
  for (const BufferInfo& b : buffer_info_) {
    const bool variance = b.name.ends_with(".running_var");
    std::fill(host_buffers.begin() + b.offset, host_buffers.begin() + b.offset + b.count,
              variance ? 1.f : 0.f);
  }
  from_host(host_params, params());
  from_host(host_buffers, buffers());
}

}  // namespace basin::exec
