// basin exec training: the large-minibatch SGD recipe of Goyal et al. 2017 around a Net, fed by
// the data layer's loader, with logs, a measured trace, validation, checkpoints and exact resume.
//
// The pieces are free functions a data-parallel trainer reuses as they are: the learning-rate
// schedule is a pure function of (epoch, global batch), the SGD step is one pass over the flat
// parameter array that skips weight decay on batch norm and biases, and a checkpoint is
// one self-checking file. train() strings them together for one process; ranks and GPUs come in
// through the Backend and the ranks' communicator (Gloo, and NCCL for GPU gradients).
#pragma once

#include <basin/comm.h>
#include <basin/data.h>
#include <basin/exec.h>
#include <basin/loss_scale.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace basin::exec {

// ---------------------------------------------------------------------------------------------
// Learning rate (Goyal et al. 2017, sections 2.1 and 2.2)
// ---------------------------------------------------------------------------------------------

struct LrSchedule {
  double base_lr = 0.1;  // for base_batch images; the linear scaling rule gives the rest
  int base_batch = 256;
  // Gradual warmup: linear, per step, from warmup_start_lr to the scaled lr over warmup_epochs.
  // A negative start means base_lr (the paper starts at 0.1 and climbs to 0.1 kn/256). A start
  // above the scaled lr is lowered to it (warmup_start): the rate never warms down.
  double warmup_epochs = 5;
  double warmup_start_lr = -1;
  enum class Decay { step, cosine } decay = Decay::step;
  std::vector<double> milestones = {30, 60, 80};  // epochs where step decay multiplies by gamma
  double gamma = 0.1;
};

// base_lr * global_batch / base_batch.
double scaled_lr(const LrSchedule& s, long long global_batch);
// The start the recipe states: warmup_start_lr, or base_lr when that is negative.
double stated_warmup_start(const LrSchedule& s);
// The rate warmup starts from: the stated start, at most scaled_lr.
double warmup_start(const LrSchedule& s, long long global_batch);
// The rate at a fractional epoch (step / steps per epoch). Cosine decays from the end of warmup
// to 0 at total_epochs (Loshchilov and Hutter 2017, without restarts).
double learning_rate(const LrSchedule& s, long long global_batch, double epoch,
                     double total_epochs);

// ---------------------------------------------------------------------------------------------
// SGD
// ---------------------------------------------------------------------------------------------

struct SgdConfig {
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 1e-4;
  bool decay_bn_and_bias = false;  // Goyal et al. leave batch norm's gamma/beta and biases alone
};

// One step over net.params() with net.grads(); `velocity` has the parameters' layout and lives
// in the backend's memory. Runs the backend's flat step (kernels' CPU or GPU SGD), so both
// backends share one definition of the update.
void sgd_step(Net& net, std::span<float> velocity, const SgdConfig& sgd, double lr);

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

// Where a run is: everything besides the tensors that an exact resume needs. The data order and
// every augmentation are pure functions of (seed, epoch, position), so the loader's position is
// the whole of the data pipeline's state.
struct RunState {
  long long step = 0;                  // optimizer steps done
  data::Position position;             // the loader's, after the last batch trained on
  std::string recipe;                  // canonical JSON of what defines the run (see train())
  // Dynamic loss scaling's state, in runs that scale (absent otherwise, and in checkpoints
  // written before basin.checkpoint/2).
  std::optional<LossScaleState> loss_scale;
  // The epoch in progress, so that a run resumed in the middle of one reports the epoch's mean
  // loss and rate over all its steps, and the wall-clock seconds of every session before this
  // one's (both absent from checkpoints of older basins: 0).
  struct EpochSoFar {
    double loss_sum = 0;       // of the steps with a finite loss
    long long finite_steps = 0;
    double images = 0, seconds = 0;
  } epoch;
  double seconds = 0;
  // Written at an epoch's end before its validation (which on CPU ranks can outlast many steps,
  // and which an interrupt would otherwise cost the epoch): a resume validates it first.
  bool validation_pending = false;
};

// One file: a magic line, a JSON header (format basin.checkpoint/2, the state, tensor sizes), then
// parameters, buffers and momentum as little-endian float32, then a 64-bit FNV-1a checksum of
// everything before it. Written to a temporary sibling, fsync'ed, renamed over `path`, and the
// directory fsync'ed: a crash leaves the old checkpoint or the new one, never a torn file.
void write_checkpoint(const std::filesystem::path& path, const Net& net,
                      std::span<const float> velocity, const RunState& state);
// Reads a checkpoint into `net` and `velocity`; basin.checkpoint/1 files (no loss scale) load
// too. Throws CheckpointError naming the file and what is wrong (bad magic, truncated, checksum
// mismatch, tensor sizes of another network).
RunState read_checkpoint(const std::filesystem::path& path, Net& net, std::span<float> velocity);

struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------------

// Where a batch is cropped, resampled, flipped and normalized. `cpu`: in the loader's worker
// threads, which hand over float images. `device`: in the backend (Backend::stage_input), the
// workers only decode JPEGs (data::LoaderOutput::raw); on a GPU backend the stage runs on the
// GPU, on the CPU backend with the kernels' CPU reference (same pixels, see exec/README.md).
// `automatic`: device on a backend whose memory is on a device (Backend::on_device), else cpu.
enum class InputStage { automatic, cpu, device };

struct TrainConfig {
  std::filesystem::path data;  // ImageNet layout: data/train/<class>/*.JPEG, data/val/...
  std::filesystem::path out;   // the run directory (created): see train()
  std::string model = "resnet18";  // a name of model::network_names(), or "resnet-custom"
  model::ResNetShape shape;        // used for "resnet-custom"; image_size is used for every model
  int batch = 32;                  // per rank and micro-batch
  int world_size = 1;              // must equal comm's world size when comm is set
  // Gradient accumulation: each step sums the gradients of `micro_batches` batches, which are
  // exactly the batches that many more ranks would train on (rank r's micro-batch j is virtual
  // rank r * micro_batches + j of the data shards), batch norm statistics per micro-batch as per
  // rank. So one process with k micro-batches and k ranks with one compute the same step.
  int micro_batches = 1;
  // Data parallel: the ranks' communicator (null: one process). Gradients are summed across
  // ranks in buckets of bucket_mb (0: one per layer with parameters, as Goyal et al.), started
  // while backward goes on (overlap) or all after it. Rank 0 writes every file; all ranks read
  // the checkpoint on resume, so `out` must be a directory they share.
  comm::Communicator* comm = nullptr;
  comm::AllreduceOptions allreduce;
  double bucket_mb = 0;
  bool overlap = true;
  // Ranks on a GPU backend: what sums the gradients. gloo stages each bucket through host memory
  // to `comm`'s Gloo allreduce (what Goyal et al. ran; ranks may share a GPU); nccl runs NCCL's
  // allreduce on the GPUs (one rank per GPU, fp32 wire; the NCCL unique id travels through
  // `comm`'s rendezvous store, and `comm` still sums the loss and validation counts);
  // nccl_gloo runs Goyal et al.'s three phases as Gloo's CUDA allreduce ran them for the paper:
  // NCCL's reduce onto each server's first rank (servers of comm->local_world_size() ranks, one
  // GPU each), allreduce.inter through Gloo among those ranks on one host copy per server, NCCL's
  // broadcast back (allreduce.algorithm must be hierarchical).
  enum class GpuCollective { gloo, nccl, nccl_gloo } gpu_collective = GpuCollective::gloo;
  // NCCL's algorithm for this run's communicator (NCCL_ALGO while it is created); automatic
  // leaves the choice per message size to NCCL's tuner. nvls: the NVSwitch sums (NVLink SHARP;
  // every rank's GPU on one third-generation NVSwitch or later, else NCCL refuses the allreduce);
  // nvls_tree: NVLS inside each such server and NCCL's tree between them. collnet_chain: chains in
  // the servers, the InfiniBand switches sum between them (SHARP, through NCCL's CollNet plugin).
  // NVLS across servers also takes SHARP; both turn NCCL's CollNet on for the communicator.
  enum class NcclAlgorithm { automatic, ring, tree, nvls, nvls_tree, collnet_chain } nccl_algorithm =
      NcclAlgorithm::automatic;
  double epochs = 90;              // fractional epochs train that share of the last epoch
  LrSchedule schedule;
  SgdConfig sgd;
  bool zero_init_residual = true;
  std::uint64_t seed = 0;
  data::TrainAugment augment;  // output size is taken from shape.image_size
  int val_resize = 0;          // validation: shorter side before the center crop of image_size;
                               // 0: image_size * 8 / 7 (ImageNet's 256 for 224)
  int loader_threads = 2;
  InputStage input_stage = InputStage::automatic;
  long long checkpoint_every = 0;  // steps; 0: at the end of every epoch only
  long long stop_after = -1;       // stop (after a checkpoint) once this many steps are done
  long long trace_step = 2;        // the step whose measured timeline goes to trace.json
  bool resume = false;             // continue from out/checkpoint.basin
  bool validate = true;            // top-1/top-5 on val/ after every epoch
  double progress_every_s = 2;     // progress lines at most this often (and at epoch ends)
  // Dynamic loss scaling (off: fp32 and bf16 need none; basin train turns it on for fp16). A
  // step whose gradients are not finite is skipped, logged ("skipped": true) and counted; its
  // data and learning-rate step are used up, as a skipped torch.cuda.amp step's are.
  LossScaleConfig loss_scale;
  // Called once per step when its gradients are complete (summed over micro-batches and ranks,
  // still multiplied by the loss scale) and before they are checked: net.grads() may be
  // changed. For tests, which plant an overflow here; empty in real runs.
  std::function<void(long long step, Net& net)> after_gradients;
};

struct EpochSummary {
  long long epoch = 0;  // 0-based
  double train_loss = 0;   // mean over the epoch's steps with a finite loss
  double val_loss = 0, top1 = 0, top5 = 0;  // fractions; NaN when not validated
  double images_per_s = 0;
};

struct TrainSummary {
  long long steps = 0, total_steps = 0;
  bool finished = false;      // all epochs done (false: stopped by stop_after)
  std::vector<EpochSummary> epochs;  // every epoch of the run: a resumed one's earlier from log.jsonl
  std::int64_t skipped_files = 0;
  long long skipped_steps = 0;  // by dynamic loss scaling, over the whole run (resumes included)
  double seconds = 0;
};

// The loss went NaN or infinite (with dynamic loss scaling: on 16 steps in a row, each of which
// was skipped, as an overflow is): the run stopped before applying that step;
// out/checkpoint.basin (if any) is the last good state.
struct Diverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The global batch: batch * micro_batches * ranks.
long long global_batch(const TrainConfig& config);

// NCCL's own name of the algorithm, as NCCL_ALGO spells it ("Ring", "Tree", "NVLS", "NVLSTree",
// "CollNetChain"); nullptr for automatic (NCCL's tuner chooses).
const char* nccl_algo_name(TrainConfig::NcclAlgorithm algorithm);

// Trains on `backend`. Writes into config.out (rank 0, but for the other ranks'
// running_stats.rank<r>.step<n>.npy, their batch-norm running statistics at the last two
// checkpoints):
//   log.jsonl         one line per step (step, epoch, loss, lr, images/s, compute, data-wait and
//                     exposed-communication seconds) and one per validation; on resume, lines after the checkpoint's
//                     step are dropped so the log reads as one uninterrupted run
//   trace.json        Chrome trace of step `trace_step`, in the simulator's format
//   checkpoint.basin  the latest checkpoint
//   weights/          the final parameters and buffers as torchvision-named .npy files
//   summary.json      final accuracies, steps, time
// `progress` receives human-readable lines. Throws data::InputError for a bad dataset,
// std::invalid_argument for a bad config (naming the field), Diverged, CheckpointError.
TrainSummary train(const TrainConfig& config, Backend& backend,
                   const std::function<void(const std::string&)>& progress = {});

// The network a config describes (classes from the dataset).
model::Network network_for(const TrainConfig& config, int classes);

}  // namespace basin::exec
