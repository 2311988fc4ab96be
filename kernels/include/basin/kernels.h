// basin kernels: the numeric building blocks basin runs itself, each as a CPU reference and,
// where CUDA was found at build time, a GPU version that tests compare against the reference.
#pragma once

#include <cstddef>

namespace basin::kernels {

// SGD with momentum and weight decay in PyTorch's form (torch.optim.SGD, dampening 0):
//   d <- g + weight_decay * w;   v <- momentum * v + d;
//   w <- w - lr * v                    (heavy ball), or
//   w <- w - lr * (d + momentum * v)   (Nesterov, Sutskever et al. 2013 as torch writes it).
// The learning rate multiplies the velocity at use, not when it is accumulated, so a change of
// lr needs no "momentum correction": this is Goyal et al. 2017's eq. 10 form, which they show
// equals eq. 9 with the correction applied.
struct SgdParams {
  float lr = 0.1f;
  float momentum = 0.9f;
  float weight_decay = 1e-4f;
  bool nesterov = false;
};

void sgd_momentum_step_cpu(float* weights, float* velocity, const float* grads, size_t n,
                           const SgdParams& p);

#ifdef BASIN_HAVE_CUDA
// Device pointers; runs on `stream` (a cudaStream_t, passed as void* to keep CUDA headers out).
void sgd_momentum_step_gpu(float* weights, float* velocity, const float* grads, size_t n,
                           const SgdParams& p, void* stream = nullptr);

// Number of CUDA devices usable by this process; 0 when there is no driver or no device.
int cuda_device_count();
#endif

}  // namespace basin::kernels
