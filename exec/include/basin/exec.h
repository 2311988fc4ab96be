// basin exec: a ResNet training step (forward, loss, backward) on a backend (backend.h).
//
// The network comes from basin::model (the same layer list the simulator reads); Net turns it
// into layers with explicit forward and backward, each running on a Backend. What a data-parallel
// trainer needs from it is flat: all parameters in one contiguous array, all gradients in another
// with the same layout, so a gradient bucket is a (offset, count) view and every layer's
// parameters are views into the array.
//
// Buffer order is BACKWARD order: the fc's weight and bias come first, conv1's weight last, so
// the gradient array fills from the front while backward runs, and after any backward step the
// finished gradients are exactly a prefix of it (what bucketed allreduce wants). Within a layer
// the order is torchvision's: weight, then bias. Names are torchvision's state_dict keys.
//
// Batch normalization's running mean and variance are buffers, not parameters: they sit in a
// third array (same order), are updated in training mode with momentum 0.1 and the unbiased
// batch variance (as torch.nn.BatchNorm2d), and are read in eval mode.
#pragma once

#include <basin/backend.h>
#include <basin/model.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

namespace basin::exec {

enum class Mode { training, eval };

struct ParamInfo {
  std::string name;      // "layer1.0.conv1.weight", "bn1.bias", "fc.weight"
  int layer = 0;         // index into model::Network::layers
  long long offset = 0;  // into Net::params() and Net::grads(), in floats
  long long count = 0;
  int backward_step = 0;          // 0 for the first layer whose backward runs (the fc), 1 next, ...
  bool no_weight_decay = false;   // batchnorm gamma and beta, and biases (Goyal et al.)
  bool last_bn_of_block = false;  // the gamma that starts at 0 (zero_init_residual)
};

struct BufferInfo {
  std::string name;  // "bn1.running_mean", "bn1.running_var"
  int layer = 0;
  long long offset = 0, count = 0;
};

struct InitOptions {
  std::uint64_t seed = 0;
  // Goyal et al. 2017: gamma = 0 in the last batchnorm of every residual block, so each block
  // starts as the identity. torchvision's default is false.
  bool zero_init_residual = true;
};

// Random images (standard normal, batch x 3 x image_size x image_size, NCHW) and labels below
// `classes`, the same for a seed: the input benchmarks and `basin profile` time a step on.
struct SyntheticBatch {
  std::vector<float> images;
  std::vector<int> labels;
};
SyntheticBatch synthetic_batch(int batch, int image_size, int classes, std::uint32_t seed = 1);

class Net {
 public:
  // Activations for `batch` images are allocated here, once; parameters start as zeros
  // until init() or a write into params().
  Net(model::Network network, Backend& backend, int batch);
  ~Net();
  Net(const Net&) = delete;
  Net& operator=(const Net&) = delete;

  const model::Network& network() const { return network_; }
  int batch() const { return batch_; }
  Backend& backend() const { return *backend_; }

  // The flat arrays live in the backend's memory (Backend::alloc_flat): host memory on the CPU,
  // device memory with a GPU backend, where only to_host/from_host may touch them from the host.
  std::span<float> params() { return {params_.get(), size_t(param_count_)}; }
  std::span<float> grads() { return {grads_.get(), size_t(param_count_)}; }
  std::span<float> buffers() { return {buffers_.get(), size_t(buffer_count_)}; }
  std::span<const float> params() const { return {params_.get(), size_t(param_count_)}; }
  std::span<const float> grads() const { return {grads_.get(), size_t(param_count_)}; }
  std::span<const float> buffers() const { return {buffers_.get(), size_t(buffer_count_)}; }
  // A host copy of (part of) a flat array in the backend's memory — params(), grads(),
  // buffers() or a momentum array from backend().alloc_flat — and the way back. Files
  // (checkpoints, .npy) and logs go through these, the one place where a GPU backend's arrays
  // cross to the host; on the CPU they are plain copies.
  std::vector<float> to_host(std::span<const float> flat) const;
  void from_host(std::span<const float> host, std::span<float> flat);
  const std::vector<ParamInfo>& param_info() const { return param_info_; }
  const std::vector<BufferInfo>& buffer_info() const { return buffer_info_; }
  const ParamInfo& param(const std::string& name) const;  // throws std::out_of_range

  // torchvision's initialization, from a seed: convs kaiming normal (fan_out, ReLU gain),
  // batchnorm gamma 1 (0 where zero_init_residual says) and beta 0, running mean 0 and
  // variance 1, fc weight and bias uniform in +-1/sqrt(fan_in) (torch.nn.Linear's default).
  void init(const InitOptions& options);

  // Runs the network on batch x 3 x image_size x image_size floats (NCHW).
  void forward(const float* images, Mode mode);
  // The same from a raw batch (data::LoaderOutput::raw), staged by the backend
  // (Backend::stage_input: on the GPU for a GPU backend); a short batch is padded with zeros.
  void forward(const data::Batch& raw, const data::Normalization& norm, Mode mode);
  // Again on the input the last forward staged, which stays in the backend's memory: for
  // benchmarks that time the network alone, with the images already on the device.
  void forward_staged(Mode mode);
  std::vector<float> logits() const;  // batch x classes, of the last forward
  // Softmax cross-entropy of the last forward, summed over the batch and divided by `divisor`
  // (the global batch when ranks share one); seeds backward. Backward starts from the loss's
  // gradient times grad_scale (dynamic loss scaling, loss_scale.h; the returned loss is unscaled).
  double loss(const int* labels, double divisor, double grad_scale = 1);
  // Gradients of the last loss() into grads() (overwritten, not accumulated). After each layer
  // with parameters, on_ready(step, floats) is called with the length of the finished prefix of
  // grads(), so a caller can start communicating a bucket while backward goes on. One backward
  // per forward: it hands the forward's outputs to gradients as it goes (the logits excepted).
  void backward(const std::function<void(int step, long long ready)>& on_ready = {});

  // Batchnorm momentum for running statistics (torch's 0.1).
  float bn_momentum = 0.1f;

 private:
  struct Node;
  void run_layers(Mode mode);  // forward from input_
  Tensor take_grad(const TensorDesc& desc, Layout layout);
  void give_back(Tensor& t);
  void accumulate(int producer, const Tensor& grad_part);
  // Memory planning (net_memory.cc): where each output lives, which backward reads each
  // output's memory last, and lending dead outputs to gradients during backward.
  void place_outputs();             // by model::plan_training_memory
  void lend_dead_after(int layer);  // backward: after the layer's backward ran (n: at its start)

  model::Network network_;
  Backend* backend_;
  int batch_;
  std::vector<Node> nodes_;
  std::shared_ptr<float> params_, grads_, buffers_;  // from backend_->alloc_flat
  long long param_count_ = 0, buffer_count_ = 0;
  std::shared_ptr<float> bn_stats_;  // one batch norm's batch mean and variance, 2 x max channels
  std::vector<ParamInfo> param_info_;
  std::vector<BufferInfo> buffer_info_;
  Tensor input_;
  std::vector<Tensor> grad_of_;      // per layer: gradient of its output during backward
  std::vector<Tensor> spare_grads_;  // released gradient tensors, reused by shape
  // Per layer i (and n, before backward's first layer): the layers whose memory no backward
  // reads once layer i's backward has run (model::TrainingMemoryPlan::dead_after).
  std::vector<std::vector<int>> dies_after_;
  std::vector<Tensor> lent_;                        // lent and not taken, this backward
  std::unordered_set<const float*> activation_memory_;  // what lent views point at
  bool have_loss_ = false, trained_forward_ = false;
  bool forward_spent_ = false;  // a backward has run since the last forward
};

// Parameters and buffers as one NumPy .npy file per tensor, named by its state_dict key
// ("layer1.0.conv1.weight.npy"), shaped as torchvision's tensors: the format torch and NumPy
// read without basin. Each file is written to a temporary name and renamed. Beside each batch
// norm's statistics, its `num_batches_tracked` (torch's count of its training forwards, which
// it uses only when momentum is None) as a 0-d int64 array: `batches_tracked`.
void save_state(const Net& net, const std::filesystem::path& dir, long long batches_tracked = 0);
// Reads the files save_state writes (or a torch state_dict saved the same way) into the net;
// throws std::runtime_error naming the file and what was expected when one is missing or
// has the wrong shape.
void load_state(Net& net, const std::filesystem::path& dir);

// Little-endian float32 .npy (format version 1.0, C order).
void write_npy(const std::filesystem::path& path, std::span<const float> data,
               const std::vector<long long>& shape);
std::vector<float> read_npy(const std::filesystem::path& path, std::vector<long long>* shape);

// torchvision's shape of a parameter or buffer (conv OIHW, fc [out, in], per-channel [C]).
std::vector<long long> tensor_shape(const model::Network& network, const ParamInfo& p);

}  // namespace basin::exec
