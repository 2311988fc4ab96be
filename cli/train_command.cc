// `basin train`: runs training for real, from flags or from a basin.plan/1 file (what `basin plan`
// writes), with flags overriding the plan's fields. The loop itself is exec::train(); this file
// maps the flags (and, through train_plan.cc, the plan) onto its config and the outcome onto
// exit codes (2 bad input, 3 the loss diverged).
#include "commands.h"
#include "rank_launcher.h"
#include "train_options.h"

#include <basin/comm.h>
#include <basin/data.h>
#include <basin/topology.h>
#include <basin/train.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>

#include <unistd.h>

namespace basin::cli {
namespace {

// The trainer's refusals name TrainConfig's fields ("base_lr: expected ..."). The user typed a
// flag, "--lr (base_lr): expected ...", or the value came from the plan file, which is then named
// with the field's JSON path: "plan.json: /lr_schedule/base_lr: expected ...".
std::string naming_the_flag(const std::string& message, const std::string& plan,
                            const std::function<bool(const char*)>& given) {
  static const std::pair<const char*, const char*> flags[] = {
      {"batch", "--batch"}, {"micro_batches", "--micro-batches"}, {"world_size", "--world-size"},
      {"epochs", "--epochs"}, {"base_lr", "--lr"}, {"base_batch", "--base-batch"},
      {"warmup_epochs", "--warmup-epochs"}, {"warmup_start_lr", "--warmup-start-lr"},
      {"gamma", "--gamma"}, {"milestones", "--milestones"}, {"momentum", "--momentum"},
      {"weight_decay", "--weight-decay"}, {"min_scale", "--min-scale"},
      {"flip_probability", "--flip-probability"}, {"loader_threads", "--loader-threads"},
      {"bucket_mb", "--bucket-mb"}, {"checkpoint_every", "--checkpoint-every"},
      {"trace_step", "--trace-step"}, {"val_resize", "--val-resize"}, {"algorithm", "--algorithm"},
      {"inter", "--inter"}, {"loss_scale.initial", "--loss-scale-init"},
      {"loss_scale.growth_interval", "--loss-scale-interval"},
      {"out", "--out"}};
  for (const auto& [field, flag] : flags) {
    if (!message.starts_with(std::string(field) + ": ")) continue;
    if (const std::string pointer = plan_field_of(field); !plan.empty() && !given(flag) && !pointer.empty())
      return plan + ": " + pointer + message.substr(std::strlen(field));
    return std::string(flag) + " (" + field + ")" + message.substr(std::strlen(field));
  }
  return message;
}


// --out before anything runs: the first existing directory on its path must be a writable
// directory, and what the run writes inside it (weights/, summary.json, ...) of the right kind.
void check_run_directory(const std::string& out, bool writes_there) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!writes_there) {
    // A rank that writes nothing there still refuses at once what no rank could use (else it
    // waits in the rendezvous for rank 0, which refused), without asking its own host for more.
    if (fs::exists(out, ec) && !fs::is_directory(out, ec))
      throw topo::InputError("--out", "", "a run directory, but " + out + " is a file");
    return;
  }
  fs::path at = fs::absolute(out, ec);
  while (!at.empty() && !fs::exists(at, ec) && at != at.parent_path()) at = at.parent_path();
  if (!fs::is_directory(at, ec))
    throw topo::InputError("--out", "", "a run directory, but " + at.string() + " is a file" +
                                            (at == fs::absolute(out, ec) ? "" : " (on the path to " + out + ")"));
  if (::access(at.c_str(), W_OK | X_OK) != 0)
    throw topo::InputError("--out", "", "a run directory this user can write, but " + at.string() +
                                            " is not writable (" + std::strerror(errno) + ")");
  if (!fs::exists(out, ec)) return;
  for (const char* dir : {"weights"})
    if (fs::exists(fs::path(out) / dir, ec) && !fs::is_directory(fs::path(out) / dir, ec))
      throw topo::InputError("--out", "", "a run directory where the run can write its " + std::string(dir) +
                                              "/ directory, but " + (fs::path(out) / dir).string() + " is a file");
  for (const char* file : {"summary.json", "log.jsonl", "checkpoint.basin", "trace.json", "loss.svg", "accuracy.svg"})
    if (fs::is_directory(fs::path(out) / file, ec))
      throw topo::InputError("--out", "", "a run directory where the run can write its " + std::string(file) +
                                              ", but " + (fs::path(out) / file).string() + " is a directory");
}

// A flag whose value is one list, given twice: CLI11 joins the lists, so `--blocks 1,1 --blocks
// 2,2` would train four stages. (A scalar flag given twice is CLI11's own error.)
void refuse_repeated_lists(int argc, char** argv) {
  for (const std::string flag : {"--blocks", "--milestones"}) {
    int times = 0;
    for (int i = 1; i < argc; ++i)
      if (const std::string_view a = argv[i]; a == flag || a.starts_with(flag + "=")) ++times;
    if (times > 1)
      throw topo::InputError(flag, "", "once, its list as one comma-separated value (e.g. 1,1,1,1), got it " +
                             std::to_string(times) + " times, whose lists would be joined");
  }
}

int run_train(TrainOptions& o, const std::function<bool(const char*)>& given, int argc,
              char** argv) {
  std::vector<std::string> auto_args;
  std::vector<char*> auto_argv;
  // The launcher's (or a lone run's) check, before --plan auto writes into --out: a rank on
  // another host may find rank 0's directory absent or read-only, and only warns later.
  const char* rank = std::getenv("RANK");
  check_run_directory(o.out, /*writes_there=*/!rank || std::string(rank) == "0");
  if (o.plan == "auto") {
    auto_args = plan_for_this_machine(o, given, argc, argv);
    for (auto& a : auto_args) auto_argv.push_back(a.data());
    auto_argv.push_back(nullptr);
    argc = static_cast<int>(auto_args.size());
    argv = auto_argv.data();
  }
  if (!o.plan.empty()) apply_plan(o.plan, o, given);
  auto& c = o.config;
  if (o.threads < 0)
    throw topo::InputError("--threads", "", "0 (this machine's cores shared by its ranks) or more threads, got " + std::to_string(o.threads));
  if (!(o.comm_timeout_s > 0) || !std::isfinite(o.comm_timeout_s))
    throw topo::InputError("--comm-timeout-s", "", "seconds above 0, got " + std::to_string(o.comm_timeout_s));
  if (o.nproc < 1) throw topo::InputError("--nproc", "", "1 or more ranks, got " + std::to_string(o.nproc));
  if (o.servers < 1 || o.nproc % o.servers != 0)
    throw topo::InputError("--servers", "", "a count of emulated servers dividing --nproc " + std::to_string(o.nproc) +
                                                ", got " + std::to_string(o.servers));
  if (o.servers > 1 && o.nproc == 1)
    throw topo::InputError("--servers", "", "--nproc with --servers (it splits the ranks --nproc starts)");
  // A GPU rank picks its GPU by LOCAL_RANK, which restarts at 0 on every emulated server: the
  // servers share this machine's GPUs, which only NCCL inside each server with Gloo between them
  // (a communicator per server) allows.
  if (o.servers > 1 && o.device == "gpu" && o.gpu_collective != "nccl+gloo")
    throw topo::InputError("--servers", "", "--device cpu, or --gpu-collective nccl+gloo, with --servers (GPU ranks "
                                            "pick their GPU by LOCAL_RANK, which --servers restarts on every emulated "
                                            "server), got --device gpu");
  if (o.nproc > 1 && std::getenv("WORLD_SIZE"))
    throw topo::InputError("--nproc", "", "no WORLD_SIZE in the environment (this process is "
                           "already a rank of " + std::string(std::getenv("WORLD_SIZE")) + ")");
  c.data = o.data;
  c.out = o.out;
  {
    // The plan's /precision/compute unless --precision overrides it; bf16 and fp16 are the GPU
    // backend's (oneDNN 2.6 on the build machines' AVX2 CPUs has no fast bf16 path to offer).
    const bool flag = o.plan.empty() || given("--precision");
    const std::string where = flag ? "--precision" : o.plan, field = flag ? "" : "/precision/compute";
    if (o.precision == "fp32") o.compute = exec::Precision::fp32;
    else if (o.precision == "bf16") o.compute = exec::Precision::bf16;
    else if (o.precision == "fp16") o.compute = exec::Precision::fp16;
    else throw topo::InputError(where, field, "fp32, bf16 or fp16, got '" + o.precision + "'");
    if (o.compute != exec::Precision::fp32 && o.device != "gpu")
      throw topo::InputError(where, field,
                             "fp32 with --device " + o.device + " (the CPU backend computes in fp32 only; "
                             "bf16 and fp16 need --device gpu), got " + o.precision +
                                 (flag ? "" : " (pass --precision fp32 to run the plan in fp32)"));
    if (o.loss_scale == "auto") c.loss_scale.enabled = o.compute == exec::Precision::fp16;
    else if (o.loss_scale == "dynamic") c.loss_scale.enabled = true;
    else if (o.loss_scale == "off") c.loss_scale.enabled = false;
    else throw topo::InputError("--loss-scale", "", "auto, dynamic or off, got '" + o.loss_scale + "'");
  }
  if (o.decay == "step") c.schedule.decay = exec::LrSchedule::Decay::step;
  else if (o.decay == "cosine") c.schedule.decay = exec::LrSchedule::Decay::cosine;
  else throw topo::InputError(o.plan.empty() ? "--decay" : o.plan, o.plan.empty() ? "" : "/lr_schedule/decay",
                              "step or cosine, got '" + o.decay + "'");
  if (given("--blocks") && given("--model") && c.model != "resnet-custom")
    throw topo::InputError("--model", "", "resnet-custom (or no --model) with --blocks, which describes a custom "
                                          "ResNet, got " + c.model);
  if (given("--blocks")) c.model = "resnet-custom";
  // The library takes a negative start as "the base lr"; typed, it is a mistake.
  if (given("--warmup-start-lr") && !(c.schedule.warmup_start_lr >= 0))
    throw topo::InputError("--warmup-start-lr", "", "a rate of 0 or more (leave it out to start from --lr), got " +
                                                        std::to_string(c.schedule.warmup_start_lr));
  // Flags only the GPU backend reads would be dropped on the CPU without a word.
  if (o.device != "gpu")
    for (const char* flag : {"--gpu", "--tf32", "--deterministic", "--persistent-batchnorm"})
      if (given(flag))
        throw topo::InputError(flag, "", std::string("--device gpu with ") + flag + " (the CPU backend has no such " +
                                             "setting), got --device " + o.device);
  if (given("--image-size") && c.shape.image_size < 1)
    throw topo::InputError("--image-size", "", "1 or more pixels, got " + std::to_string(c.shape.image_size));
  if (given("--width") && c.shape.width < 1)
    throw topo::InputError("--width", "", "1 or more channels, got " + std::to_string(c.shape.width));
  if (given("--stop-after") && c.stop_after < 1)
    throw topo::InputError("--stop-after", "", "1 or more steps (counted from the run's start), got " +
                                                   std::to_string(c.stop_after));
  if (o.input_stage == "auto") c.input_stage = exec::InputStage::automatic;
  else if (o.input_stage == "cpu") c.input_stage = exec::InputStage::cpu;
  else if (o.input_stage == "gpu") c.input_stage = exec::InputStage::device;
  else throw topo::InputError("--input-stage", "", "auto, cpu or gpu, got '" + o.input_stage + "'");
  c.zero_init_residual = !o.no_zero_init;
  c.validate = !o.no_validate;
  c.overlap = !o.no_overlap;
  try {
    c.allreduce.algorithm = comm::parse_algorithm(o.algorithm);
  } catch (const comm::CommError& e) {
    throw topo::InputError(o.plan.empty() || given("--algorithm") ? "--algorithm" : o.plan,
                           o.plan.empty() || given("--algorithm") ? "" : "/allreduce/algorithm", e.what());
  }
  try {
    c.allreduce.inter = comm::parse_algorithm(o.inter);
  } catch (const comm::CommError& e) {
    throw topo::InputError(o.plan.empty() || given("--inter") ? "--inter" : o.plan,
                           o.plan.empty() || given("--inter") ? "" : "/allreduce/inter", e.what());
  }
  try {
    c.allreduce.precision = comm::parse_wire_precision(o.wire);
  } catch (const comm::CommError&) {
    throw topo::InputError(o.plan.empty() || given("--wire") ? "--wire" : o.plan,
                           o.plan.empty() || given("--wire") ? "" : "/precision/wire",
                           "fp32, fp16 or bf16, got '" + o.wire + "'");
  }
  choose_gpu_collective(o, given);  // first: it names --inter beside NCCL as NCCL's matter
  if (given("--inter") && c.allreduce.algorithm != comm::Algorithm::hierarchical)
    throw topo::InputError("--inter", "", "--algorithm hierarchical with --inter (the algorithm between servers), got " +
                                              (o.plan.empty() || given("--algorithm")
                                                   ? "--algorithm " + o.algorithm
                                                   : o.plan + "'s allreduce, run as Gloo's " + o.algorithm));
  // Checked here, before any rank starts, as well as by every rank's trainer.
  if (c.allreduce.algorithm == comm::Algorithm::hierarchical && !comm::runs_between_servers(c.allreduce.inter))
    throw topo::InputError(o.plan.empty() || given("--inter") ? "--inter" : o.plan,
                           o.plan.empty() || given("--inter") ? "" : "/allreduce/inter",
                           std::string("halving_doubling, ring_chunked or ring between servers, got ") +
                               comm::name(c.allreduce.inter));
  if (o.nproc > 1) {
    if (o.device == "gpu" && gpu_count() == 0)
      throw topo::InputError("--device", "", "gpu on a machine with a usable CUDA GPU: none found (no driver or no device)");
    if (o.device == "gpu" && c.gpu_collective == exec::TrainConfig::GpuCollective::nccl &&
        o.nproc > gpu_count())
      throw topo::InputError("--nproc", "",
                             "at most " + std::to_string(gpu_count()) + " ranks with --gpu-collective nccl (NCCL "
                             "runs one rank per GPU and this machine has " + std::to_string(gpu_count()) +
                             "), got " + std::to_string(o.nproc) +
                             "; --gpu-collective gloo lets ranks share GPUs");
    if (o.device == "gpu" && c.gpu_collective == exec::TrainConfig::GpuCollective::nccl_gloo &&
        o.nproc / o.servers > gpu_count())
      throw topo::InputError("--nproc", "",
                             "at most " + std::to_string(gpu_count()) + " ranks per server with --gpu-collective "
                             "nccl+gloo (NCCL runs one rank per GPU inside a server and this machine has " +
                             std::to_string(gpu_count()) + "), got " + std::to_string(o.nproc / o.servers) +
                             "; --servers splits them");
    if (!given("--world-size") && o.plan.empty()) c.world_size = o.nproc;
    if (c.world_size != o.nproc)
      throw topo::InputError("--world-size", "", std::to_string(o.nproc) + " (--nproc), got " +
                             std::to_string(c.world_size));
    return launch_ranks(o.nproc, o.servers, o.out, argc, argv);
  }
  // A rank started by --nproc, torchrun or a batch system: meet the others.
  follow_launcher();
  std::unique_ptr<comm::Communicator> mesh;
  const int env_ranks = ranks_from_env();
  if (std::getenv("RANK") || env_ranks > 1) {
    comm::RendezvousConfig rc = comm::rendezvous_from_env();
    if (!std::getenv("BASIN_TIMEOUT_S"))
      rc.timeout = std::chrono::milliseconds(static_cast<long long>(o.comm_timeout_s * 1000));
    if (!given("--world-size") && o.plan.empty()) c.world_size = rc.world_size;
    mesh = comm::connect(rc);
    c.comm = mesh.get();
  }
  auto backend = make_backend(o);
  auto say = [&](const std::string& line) {
    if (!o.quiet) std::cerr << line << "\n";
  };
  // A rank that fails leaves without the communicator's last barrier (its peers may be inside
  // a collective it will never join), hands its line to the launcher and exits with `code`.
  auto fail = [&](const std::string& line, int code) {
    if (mesh) mesh->leave_on_failure();
    print_failure(line);
    return code;
  };
  try {
    const exec::TrainSummary s = exec::train(c, *backend, say);
    nlohmann::json out = {{"steps", s.steps}, {"total_steps", s.total_steps},
                          {"finished", s.finished}, {"skipped_files", s.skipped_files},
                          {"skipped_steps", s.skipped_steps},
                          {"seconds", s.seconds}, {"out", c.out.string()}};
    if (!s.epochs.empty() && std::isfinite(s.epochs.back().top1))
      out["top1"] = s.epochs.back().top1, out["top5"] = s.epochs.back().top5;
    if (!c.comm || c.comm->rank() == 0) {
      // The plots are a convenience: a failure to draw them leaves the run's result standing.
      try {
        for (const std::string& path : plot_training_log(c.out / "log.jsonl", c.out))
          say("wrote " + path);
      } catch (const std::exception& e) {
        std::cerr << "basin: warning: no plots: " << e.what() << "\n";
      }
      std::cout << out.dump(1) << "\n";
    }
    return 0;
  } catch (const exec::Diverged& e) {
    return fail(std::string("basin: training diverged: ") + e.what(), 3);
  } catch (const exec::CheckpointError& e) {
    return fail(std::string("basin: error: ") + e.what(), 2);
  } catch (const std::invalid_argument& e) {
    return fail("basin: error: " + naming_the_flag(e.what(), o.plan, given), 2);
  } catch (const comm::CommError& e) {
    return fail(std::string("basin: communication failed: ") + e.what(), 1);
  }
}

}  // namespace

std::function<int()> add_train_command(CLI::App& app, int argc, char** argv) {
  auto o = std::make_shared<TrainOptions>();
  auto& c = o->config;
  auto* cmd = app.add_subcommand("train", "Train a ResNet for real on an ImageNet-layout JPEG dataset");
  cmd->add_option("--data", o->data, "dataset root holding train/<class>/*.JPEG and val/<class>/")->required();
  cmd->add_option("--out", o->out, "run directory: log.jsonl, trace.json, checkpoint.basin, weights/, summary.json")
      ->capture_default_str();
  cmd->add_option("--plan", o->plan,
                  "a basin.plan/1 file (from basin plan), or auto: plan for this machine and run that; flags "
                  "override the plan's fields");
  cmd->add_option("--hwloc-xml", o->hwloc_xml, "with --plan auto: discover from this hwloc XML export instead");
  cmd->add_option("--model", c.model, "resnet18, resnet34, resnet50, resnet101, resnet152")->capture_default_str();
  cmd->add_option("--blocks", c.shape.blocks, "a custom ResNet: blocks per stage, e.g. 1,1,1,1")
      ->delimiter(',');
  cmd->add_option("--width", c.shape.width, "custom ResNet: width of the stem and first stage")->capture_default_str();
  cmd->add_flag("--bottleneck", c.shape.bottleneck, "custom ResNet: bottleneck blocks");
  cmd->add_option("--image-size", c.shape.image_size, "training crop and validation crop, pixels")->capture_default_str();
  cmd->add_option("--batch", c.batch, "images per step per rank")->capture_default_str();
  cmd->add_option("--world-size", c.world_size, "ranks (set by --nproc or WORLD_SIZE; a plan's must match)")
      ->capture_default_str();
  cmd->add_option("--nproc", o->nproc, "start this many local ranks (one process each, Gloo over loopback)")
      ->capture_default_str();
  cmd->add_option("--servers", o->servers,
                  "number the --nproc ranks as this many servers' (LOCAL_RANK, LOCAL_WORLD_SIZE), as torchrun "
                  "would on that many machines: what --algorithm hierarchical groups by")
      ->capture_default_str();
  cmd->add_option("--micro-batches", c.micro_batches, "gradient accumulation: micro-batches per step")
      ->capture_default_str();
  cmd->add_option("--algorithm", o->algorithm,
                  "Gloo allreduce: ring_chunked, halving_doubling, bcube, ring (ring: 2 ranks at most), or "
                  "hierarchical (Goyal et al.'s three phases; servers of LOCAL_WORLD_SIZE ranks)")
      ->capture_default_str();
  cmd->add_option("--inter", o->inter,
                  "Gloo allreduce between servers for --algorithm hierarchical: halving_doubling, ring_chunked, "
                  "ring (2 servers at most)")
      ->capture_default_str();
  cmd->add_option("--bucket-mb", c.bucket_mb, "gradient bucket size, MB of fp32 gradients; a 16-bit --wire sends half (0: one per layer)")->capture_default_str();
  cmd->add_option("--wire", o->wire, "gradients on the wire: fp32, fp16 or bf16 (NCCL or Gloo)")->capture_default_str();
  cmd->add_flag("--no-overlap", o->no_overlap, "allreduce after backward instead of during it");
  cmd->add_option("--comm-timeout-s", o->comm_timeout_s, "a rank silent this long is an error")
      ->capture_default_str();
  cmd->add_option("--epochs", c.epochs, "epochs (fractions allowed)")->capture_default_str();
  cmd->add_option("--precision", o->precision,
                  "activations and convolutions in fp32, bf16 or fp16 (bf16/fp16: --device gpu; weights, "
                  "optimizer and loss stay fp32)")->capture_default_str();
  cmd->add_option("--loss-scale", o->loss_scale,
                  "dynamic loss scaling: auto (on for fp16), dynamic or off")->capture_default_str();
  cmd->add_option("--loss-scale-init", c.loss_scale.initial, "dynamic loss scaling's first scale")
      ->capture_default_str();
  cmd->add_option("--loss-scale-interval", c.loss_scale.growth_interval,
                  "dynamic loss scaling doubles the scale after this many good steps")->capture_default_str();
  cmd->add_option("--lr", c.schedule.base_lr, "learning rate for --base-batch images (linear scaling)")->capture_default_str();
  cmd->add_option("--base-batch", c.schedule.base_batch, "batch the base lr is given for")->capture_default_str();
  cmd->add_option("--warmup-epochs", c.schedule.warmup_epochs, "gradual linear warmup length")->capture_default_str();
  cmd->add_option("--warmup-start-lr", c.schedule.warmup_start_lr, "warmup's first lr (default: --lr)");
  cmd->add_option("--decay", o->decay, "step or cosine")->capture_default_str();
  cmd->add_option("--milestones", c.schedule.milestones, "step decay epochs")->delimiter(',');
  cmd->add_option("--gamma", c.schedule.gamma, "step decay factor")->capture_default_str();
  cmd->add_option("--momentum", c.sgd.momentum)->capture_default_str();
  cmd->add_flag("--nesterov", c.sgd.nesterov, "Nesterov momentum");
  cmd->add_option("--weight-decay", c.sgd.weight_decay)->capture_default_str();
  cmd->add_flag("--decay-bn-and-bias", c.sgd.decay_bn_and_bias, "apply weight decay to batch norm and biases too");
  cmd->add_flag("--no-zero-init-residual", o->no_zero_init, "start each block's last BN gamma at 1, not 0");
  cmd->add_option("--min-scale", c.augment.min_scale, "RandomResizedCrop's smallest area fraction")->capture_default_str();
  cmd->add_option("--val-resize", c.val_resize,
                  "validation: shorter side resized to this before the center crop (default: "
                  "image size x 8/7, ImageNet's 256 for 224)");
  cmd->add_option("--flip-probability", c.augment.flip_probability, "horizontal flips in training")
      ->capture_default_str();
  cmd->add_option("--seed", c.seed, "initialization, data order and augmentation")
      ->check(whole_number())
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "compute threads (0: this machine's cores shared by its ranks)")
      ->capture_default_str();
  cmd->add_option("--device", o->device, "cpu (oneDNN, fp32) or gpu (cuDNN + cuBLAS, --precision)")->capture_default_str();
  cmd->add_option("--gpu", o->gpu, "with --device gpu: the GPU's index (default: LOCAL_RANK, else 0; "
                                  "with gloo, ranks beyond the GPU count share GPUs round-robin)");
  cmd->add_option("--gpu-collective", o->gpu_collective,
                  "with --device gpu: nccl (allreduce on the GPUs, one rank per GPU; the default when built "
                  "with NCCL), gloo (buckets staged through host memory; ranks may share a GPU) or nccl+gloo "
                  "(Goyal et al.'s three phases: NCCL's reduce and broadcast in each server, --inter through "
                  "Gloo between servers on one host copy each); with --plan, the plan's /allreduce/library");
  cmd->add_option("--nccl-algorithm", o->nccl_algorithm,
                  "with --gpu-collective nccl: ring, tree, nvls (the NVSwitch sums; H100 or B200 NVSwitch servers; "
                  "across servers with InfiniBand SHARP), nvls-tree (NVLS in each such server, NCCL's tree between "
                  "them), collnet-chain (chains in the servers, SHARP between them), or auto (NCCL's tuner); a "
                  "plan's NCCL ring, tree, nvls, nvls-tree or collnet-chain is used")
      ->capture_default_str();
  cmd->add_flag("--tf32", o->tf32, "with --device gpu: TF32 tensor-core math for fp32 convolutions and GEMMs");
  cmd->add_flag("--deterministic", o->deterministic,
                "with --device gpu: deterministic convolution algorithms only (identical reruns)");
  cmd->add_flag("--persistent-batchnorm", o->persistent_batchnorm,
                "with --device gpu: cuDNN's persistent NHWC batch norm (faster; narrower range)");
  cmd->add_option("--loader-threads", c.loader_threads, "JPEG decode threads")->capture_default_str();
  cmd->add_option("--input-stage", o->input_stage,
                  "where crop, resize, flip and normalize run: cpu (the loader's threads), gpu (the "
                  "backend: the loader only decodes; on --device cpu the same stage on the CPU), or "
                  "auto (gpu with --device gpu, else cpu)")
      ->capture_default_str();
  cmd->add_option("--checkpoint-every", c.checkpoint_every, "steps between checkpoints (0: each epoch end)")->capture_default_str();
  cmd->add_option("--stop-after", c.stop_after, "stop once the run has done this many steps (counted from its start, resumes included), with a checkpoint (resume later)");
  cmd->add_option("--trace-step", c.trace_step, "the step measured into trace.json")->capture_default_str();
  cmd->add_flag("--resume", c.resume, "continue the run in --out from its checkpoint");
  cmd->add_flag("--no-validate", o->no_validate, "skip the per-epoch validation");
  cmd->add_flag("--quiet", o->quiet, "no progress lines");
  return [o, cmd, argc, argv] {
    refuse_repeated_lists(argc, argv);
    return run_train(*o, [cmd](const char* flag) { return cmd->count(flag) > 0; }, argc, argv);
  };
}

}  // namespace basin::cli
