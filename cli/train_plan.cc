// How a basin.plan/1 file, or `--plan auto`, fills `basin train`'s options (train_options.h):
// the plan's fields where the user gave no flag, the plan's allreduce mapped onto what the ranks
// run, and the plan made for this machine on the spot.
#include "plan_auto.h"
#include "train_options.h"

#include <basin/model.h>
#include <basin/plan.h>
#include <basin/sim.h>
#include <basin/topology.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <optional>

namespace basin::cli {

int ranks_from_env() {
  const char* w = std::getenv("WORLD_SIZE");
  if (!w || !*w) return 1;
  try {
    size_t used = 0;
    const int n = std::stoi(w, &used);
    if (used == std::strlen(w) && n >= 1) return n;
  } catch (const std::exception&) {
  }
  throw topo::InputError("WORLD_SIZE", "", std::string("a rank count of 1 or more, got '") + w + "'");
}

namespace {

// basin.plan/1's fields (docs/plan-format.md), each with the TrainConfig field it sets where the
// trainer names one in its refusals: the one list both the check below and the error naming
// (plan_field_of) read. A misspelt optional field ("intr" for the hierarchical plan's "inter")
// would otherwise be read as absent and the run would silently use a default instead of the
// plan; "prediction" is the planner's record and is not read here.
struct PlanField {
  const char* pointer;
  const char* trainer_field;  // "" where the trainer names none
};
constexpr PlanField kPlanFields[] = {
    {"/format", ""}, {"/cluster", ""}, {"/model", ""}, {"/device", ""}, {"/world_size", "world_size"},
    {"/batch_per_device", "batch"}, {"/global_batch", ""}, {"/epochs", "epochs"}, {"/dataset_images", ""},
    {"/prediction", ""}, {"/basis", ""}, {"/threads_per_rank", ""}, {"/servers", ""}, {"/gpus_per_server", ""},
    {"/allreduce/algorithm", "algorithm"}, {"/allreduce/inter", "inter"}, {"/allreduce/protocol", ""},
    {"/allreduce/library", ""}, {"/allreduce/bucket_MB", "bucket_mb"},
    {"/precision/compute", ""}, {"/precision/wire", ""},
    {"/lr_schedule/base_lr", "base_lr"}, {"/lr_schedule/base_batch", "base_batch"}, {"/lr_schedule/lr", ""},
    {"/lr_schedule/warmup_epochs", "warmup_epochs"}, {"/lr_schedule/warmup_start_lr", "warmup_start_lr"},
    {"/lr_schedule/decay", ""}, {"/lr_schedule/milestones", "milestones"}, {"/lr_schedule/gamma", "gamma"},
    {"/lr_schedule/momentum", "momentum"}, {"/lr_schedule/nesterov", ""},
    {"/lr_schedule/weight_decay", "weight_decay"}, {"/lr_schedule/weight_decay_on_bn_and_bias", ""},
    {"/lr_schedule/zero_init_last_bn_gamma", ""}};

void check_plan_fields(const nlohmann::json& plan, const std::string& path) {
  // The known names at the top and under each object, read off the pointers.
  std::map<std::string, std::vector<std::string>> known;  // "" for the top level, else "/allreduce", ...
  for (const PlanField& f : kPlanFields) {
    const std::string pointer = f.pointer;
    const size_t slash = pointer.rfind('/');
    const std::string parent = pointer.substr(0, slash);
    auto add = [&](const std::string& at, const std::string& name) {
      auto& names = known[at];
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    };
    add(parent, pointer.substr(slash + 1));
    if (!parent.empty()) add("", parent.substr(1));
  }
  for (const auto& [parent, names] : known) {
    const nlohmann::json::json_pointer at(parent);
    if (plan.contains(at) && plan[at].is_object()) topo::require_known_fields(plan[at], names, path, parent);
  }
}

}  // namespace

std::string plan_field_of(const std::string& trainer_field) {
  for (const PlanField& f : kPlanFields)
    if (trainer_field == f.trainer_field) return f.pointer;
  return "";
}

namespace {

std::string format_number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", x);
  return text;
}

// The allreduce's names as plan_document writes them: a misspelt algorithm ("rnig") would
// otherwise run Gloo's nearest stand-in, and a protocol nobody checks is a plan nobody made.
void check_allreduce_names(const nlohmann::json& plan, const std::string& path) {
  auto name_at = [&](const char* pointer) -> std::string {
    const nlohmann::json::json_pointer ptr(pointer);
    if (!plan.contains(ptr)) return "";
    if (!plan[ptr].is_string()) throw topo::InputError(path, pointer, "a string, got " + plan[ptr].dump());
    return plan[ptr].get<std::string>();
  };
  auto basin_algorithm = [&](const char* pointer, const std::string& name, const std::string& also) {
    try {
      sim::algorithm_from_string(name, path);
    } catch (const topo::InputError& e) {
      throw topo::InputError(path, pointer, also + e.expected);
    }
  };
  const std::string algorithm = name_at("/allreduce/algorithm");
  if (algorithm != "auto" && !algorithm.empty())
    basin_algorithm("/allreduce/algorithm", algorithm, "auto (NCCL's tuner) or ");
  if (const std::string inter = name_at("/allreduce/inter"); !inter.empty())
    basin_algorithm("/allreduce/inter", inter, "");
  if (const std::string protocol = name_at("/allreduce/protocol");
      !protocol.empty() && protocol != "auto" && protocol != "LL" && protocol != "LL128" && protocol != "Simple")
    throw topo::InputError(path, "/allreduce/protocol", "auto, LL, LL128 or Simple, got \"" + protocol + "\"");
}

// Fields a plan states beside those they follow from (docs/plan-format.md): one that disagrees
// means the file was edited halfway, and which of the two was meant is not for basin to guess.
void check_derived_fields(const nlohmann::json& plan, const std::string& path) {
  auto number_at = [&](const char* pointer) -> std::optional<double> {
    const nlohmann::json::json_pointer ptr(pointer);
    if (!plan.contains(ptr) || !plan[ptr].is_number()) return std::nullopt;  // the readers say what is wrong
    return plan[ptr].get<double>();
  };
  const auto world = number_at("/world_size"), batch = number_at("/batch_per_device"),
             global = number_at("/global_batch");
  if (world && batch && global && *global != *world * *batch)
    throw topo::InputError(path, "/global_batch",
                           "world_size x batch_per_device = " + format_number(*world * *batch) + ", got " +
                               format_number(*global));
  const auto base_lr = number_at("/lr_schedule/base_lr"), base_batch = number_at("/lr_schedule/base_batch"),
             lr = number_at("/lr_schedule/lr");
  if (world && batch && base_lr && base_batch && lr && *base_batch > 0) {
    const double rule = *base_lr * *world * *batch / *base_batch;
    if (std::abs(*lr - rule) > 1e-6 * std::max(std::abs(rule), 1e-12))
      throw topo::InputError(path, "/lr_schedule/lr",
                             "base_lr x global_batch / base_batch = " + format_number(rule) +
                                 " (the linear scaling rule), got " + format_number(*lr));
  }
}

}  // namespace

void apply_plan(const std::string& path, TrainOptions& o,
                const std::function<bool(const char*)>& given) {
  const std::string text_of_file = topo::read_text_file(path, "a readable basin.plan/1 file");
  nlohmann::json plan;
  try {
    plan = nlohmann::json::parse(text_of_file);
  } catch (const nlohmann::json::exception& e) {
    throw topo::InputError(path, "", std::string("JSON: ") + e.what());
  }
  if (!plan.is_object()) throw topo::InputError(path, "", "a JSON object (basin.plan/1), got " + plan.dump());
  check_plan_fields(plan, path);
  auto field = [&](const char* pointer) -> const nlohmann::json& {
    const nlohmann::json::json_pointer ptr(pointer);
    if (!plan.contains(ptr)) throw topo::InputError(path, pointer, "a value, found none");
    return plan.at(ptr);
  };
  auto number = [&](const char* pointer) {
    const auto& v = field(pointer);
    if (!v.is_number()) throw topo::InputError(path, pointer, "a number, got " + v.dump());
    return v.get<double>();
  };
  // Counts (ranks, images) must be whole and fit an int: a cast would truncate 2.5 and wrap 1e10.
  auto whole = [&](const char* pointer) {
    const auto& v = field(pointer);
    if (!v.is_number_integer() || v.get<long long>() < 1 || v.get<long long>() > std::numeric_limits<int>::max())
      throw topo::InputError(path, pointer, "a whole number of at least 1, got " + v.dump());
    return v.get<int>();
  };
  auto boolean = [&](const char* pointer) {
    const auto& v = field(pointer);
    if (!v.is_boolean()) throw topo::InputError(path, pointer, "true or false, got " + v.dump());
    return v.get<bool>();
  };
  auto text = [&](const char* pointer) {
    const auto& v = field(pointer);
    if (!v.is_string()) throw topo::InputError(path, pointer, "a string, got " + v.dump());
    return v.get<std::string>();
  };
  if (field("/format") != "basin.plan/1")
    throw topo::InputError(path, "/format", "\"basin.plan/1\", got " + field("/format").dump());
  check_allreduce_names(plan, path);
  auto& c = o.config;
  auto& s = c.schedule;
  if (!given("--model")) c.model = text("/model");
  // A network of --blocks has no name to rebuild it by: the plan records none of its shape.
  if (c.model == "resnet-custom" && !given("--blocks"))
    throw topo::InputError(path, "/model",
                           "a network name; resnet-custom (a --blocks network, whose blocks, width and image size "
                           "a plan does not record) runs only with the --blocks, --width and --image-size it was "
                           "planned with");
  if (!given("--model") && c.model != "resnet-custom") {
    const auto names = model::network_names();
    if (std::find(names.begin(), names.end(), c.model) == names.end()) {
      std::string known;
      for (const auto& n : names) known += n + ", ";
      throw topo::InputError(path, "/model", "one of " + known + "or resnet-custom, got \"" + c.model + "\"");
    }
  }
  if (!given("--batch")) c.batch = whole("/batch_per_device");
  if (!given("--world-size")) c.world_size = whole("/world_size");
  if (!given("--epochs")) c.epochs = number("/epochs");
  if (!given("--precision")) o.precision = text("/precision/compute");
  if (!given("--lr")) s.base_lr = number("/lr_schedule/base_lr");
  if (!given("--base-batch")) s.base_batch = whole("/lr_schedule/base_batch");
  if (!given("--warmup-epochs")) s.warmup_epochs = number("/lr_schedule/warmup_epochs");
  // The plan's start is min(base_lr, lr) of its own recipe where basin plan wrote it: a flag that
  // moves the peak (--lr, --base-batch, or the global batch's --batch, --world-size,
  // --micro-batches) leaves the start to that rule for the run's own numbers, as without a plan.
  // A start the plan's author set apart from the rule stays.
  if (!given("--warmup-start-lr")) {
    const double start = number("/lr_schedule/warmup_start_lr");
    if (!(start >= 0)) throw topo::InputError(path, "/lr_schedule/warmup_start_lr", "a rate of 0 or more, got " + format_number(start));
    // A plan without its lr (the field is derived; older plans may lack it) keeps its start.
    const bool has_lr = plan.contains("/lr_schedule/lr"_json_pointer) && plan["/lr_schedule/lr"_json_pointer].is_number();
    const double rule = has_lr ? std::min(number("/lr_schedule/base_lr"), number("/lr_schedule/lr")) : NAN;
    const bool derived = has_lr && std::abs(start - rule) <= 1e-9 * std::max(std::abs(rule), 1e-12);
    const bool peak_moved = given("--lr") || given("--base-batch") || given("--batch") || given("--world-size") ||
                            given("--micro-batches");
    if (!(derived && peak_moved)) s.warmup_start_lr = start;
  }
  if (!given("--decay")) o.decay = text("/lr_schedule/decay");
  // Step decay's factor and epochs; a cosine plan need not state them (basin plan writes them).
  const bool cosine = o.decay == "cosine";
  if (!given("--gamma") && !(cosine && !plan.contains("/lr_schedule/gamma"_json_pointer)))
    s.gamma = number("/lr_schedule/gamma");
  if (!given("--milestones") && !(cosine && !plan.contains("/lr_schedule/milestones"_json_pointer))) {
    const auto& m = field("/lr_schedule/milestones");
    if (!m.is_array()) throw topo::InputError(path, "/lr_schedule/milestones", "an array of epochs");
    s.milestones.clear();
    for (const auto& e : m) {
      if (!e.is_number()) throw topo::InputError(path, "/lr_schedule/milestones", "numbers, got " + e.dump());
      s.milestones.push_back(e.get<double>());
    }
  }
  if (!given("--momentum")) c.sgd.momentum = number("/lr_schedule/momentum");
  if (!given("--nesterov")) c.sgd.nesterov = boolean("/lr_schedule/nesterov");
  if (!given("--weight-decay")) c.sgd.weight_decay = number("/lr_schedule/weight_decay");
  {
    const plan::GlooRun gloo = plan::gloo_run(text("/allreduce/algorithm"), plan.contains("/allreduce/inter"_json_pointer)
                                                                                 ? text("/allreduce/inter")
                                                                                 : std::string());
    if (!given("--algorithm")) o.algorithm = gloo.algorithm;
    // The plan's algorithm between servers, also under an --algorithm hierarchical of the user's.
    if (!given("--inter") && o.algorithm == "hierarchical" && gloo.algorithm == "hierarchical") o.inter = gloo.inter;
  }
  // What the plan's allreduce was priced as running on (docs/plan-format.md): on GPUs that picks
  // the collective unless --gpu-collective does. A plan written before /allreduce/library is NCCL's
  // where it names a protocol, else left to the defaults.
  const std::string algorithm = text("/allreduce/algorithm");
  const std::string library = plan.contains("/allreduce/library"_json_pointer) ? text("/allreduce/library")
                              : plan.contains("/allreduce/protocol"_json_pointer) ? "nccl"
                                                                                  : "";
  const bool stated = plan.contains("/allreduce/library"_json_pointer);
  if (library != "nccl" && library != "gloo" && library != "nccl+gloo" && library != "simulated-only" &&
      library != "none" && (stated || !library.empty()))
    throw topo::InputError(path, "/allreduce/library",
                           "nccl, gloo, nccl+gloo, simulated-only or none, got \"" + library + "\"");
  if (!given("--nccl-algorithm"))
    o.nccl_algorithm = library == "nccl" && (algorithm == "ring" || algorithm == "tree" || algorithm == "nvls" ||
                                             algorithm == "nvls-tree" || algorithm == "collnet-chain")
                           ? algorithm
                           : "auto";
  // A plan made for GPUs runs on CPU ranks as well (the recipe and the allreduce carry over),
  // but its prediction was for the GPUs: said, so its figures are not taken for this run's.
  if (o.device == "cpu" && !o.quiet && !std::getenv("RANK") && plan.contains("device") && plan["device"].is_string() &&
      plan["device"] != "cpu")
    std::cerr << "basin: note: " << path << " was planned for " << plan["device"].get<std::string>()
              << " GPUs; these CPU ranks run its recipe and its allreduce through Gloo ("
              << o.algorithm << "), and its prediction is not theirs\n";
  if (o.device == "gpu" && !given("--gpu-collective")) {
    if (library == "simulated-only")
      throw topo::InputError(path, "/allreduce/library",
                             "nccl or gloo for a run on GPUs: the plan's " + algorithm +
                                 (algorithm == "hierarchical"
                                      ? " was priced with its leaders moving GPU memory directly between servers "
                                        "(or with an algorithm between them that Gloo has not); basin train runs the "
                                        "three phases with Gloo's ring or halving-doubling between servers, through "
                                        "host memory (--gpu-collective nccl+gloo)."
                                      : " is basin's own schedule, priced moving GPU memory directly, which neither "
                                        "NCCL nor Gloo does.") +
                                 " Pass --gpu-collective nccl (NCCL chooses its algorithm), nccl+gloo or gloo "
                                 "(through host memory, slower than the plan predicts), or plan without "
                                 "--algorithms, which searches what runs");
    if ((library == "nccl" || library == "nccl+gloo") && !BASIN_HAVE_NCCL)
      throw topo::InputError(path, "/allreduce/library",
                             "gloo in a basin built without NCCL (nccl.h and libnccl next to the CUDA toolkit), got " +
                                 library + "; pass --gpu-collective gloo to run the plan through Gloo instead");
    if (library == "nccl" || library == "gloo" || library == "nccl+gloo") o.gpu_collective = library;
  }
  if (!given("--bucket-mb")) c.bucket_mb = number("/allreduce/bucket_MB");
  if (!given("--wire")) o.wire = text("/precision/wire");
  if (!given("--decay-bn-and-bias"))
    c.sgd.decay_bn_and_bias = boolean("/lr_schedule/weight_decay_on_bn_and_bias");
  if (!given("--no-zero-init-residual"))
    o.no_zero_init = !boolean("/lr_schedule/zero_init_last_bn_gamma");
  // Where the ranks sit, as basin plan wrote it: read by whoever starts them, checked here.
  if (plan.contains("servers") && !(plan["servers"].is_number_integer() && plan["servers"].get<long long>() >= 1))
    throw topo::InputError(path, "/servers", "a whole number of servers, 1 or more, got " + plan["servers"].dump());
  if (plan.contains("gpus_per_server")) {
    const auto& g = plan["gpus_per_server"];
    auto whole_gpus = [](const nlohmann::json& x) { return x.is_number_integer() && x.get<long long>() >= 1; };
    if (!(whole_gpus(g) || (g.is_array() && !g.empty() && std::all_of(g.begin(), g.end(), whole_gpus))))
      throw topo::InputError(path, "/gpus_per_server",
                             "GPUs on each server, 1 or more, or a list of them per server, got " + g.dump());
  }
  // --nproc on one machine numbers CPU ranks as the plan's servers would be (--servers), so that
  // a hierarchical plan runs its phase between servers, where the servers are even. Not GPU
  // ranks: LOCAL_RANK restarts on each emulated server, which would put two ranks on each of
  // half the GPUs.
  if (plan.contains("servers") && !given("--servers") && o.nproc > 1 && o.device == "cpu") {
    const long long servers = plan["servers"].get<long long>();
    const bool even = !plan.contains("gpus_per_server") || plan["gpus_per_server"].is_number_integer();
    if (servers > 1 && even && o.nproc % servers == 0) o.servers = static_cast<int>(servers);
  }
  check_derived_fields(plan, path);  // after the fields' own types and values are checked
  const int ranks = std::max(o.nproc, ranks_from_env());
  if (c.world_size != ranks)
    throw topo::InputError(path, "/world_size",
                           std::to_string(ranks) + " (the ranks started: --nproc or WORLD_SIZE), "
                           "the plan asks for " + std::to_string(c.world_size) +
                               ". Pass --world-size " + std::to_string(ranks) +
                               " to run the plan's per-device batch and recipe on these ranks (the "
                               "learning rate then follows the linear scaling rule for that "
                               "global batch)");
}

namespace {
// The command line with `--plan auto` replaced by the plan file, for the ranks --nproc starts.
std::vector<std::string> with_plan_file(int argc, char** argv, const std::string& plan) {
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--plan=auto") args.push_back("--plan=" + plan);
    else if (a == "auto" && i > 0 && std::string(argv[i - 1]) == "--plan") args.push_back(plan);
    else args.push_back(a);
  }
  return args;
}
}  // namespace

std::vector<std::string> plan_for_this_machine(TrainOptions& o, const std::function<bool(const char*)>& given,
                                               int argc, char** argv) {
  // A run directory with a run in it: resuming takes the plan it was made with; anything else is
  // refused by the trainer, and the plan must not be rewritten before that.
  const std::filesystem::path earlier = std::filesystem::path(o.out) / "plan.json";
  if (o.config.resume && std::filesystem::exists(earlier)) {
    o.plan = earlier.string();
    std::vector<std::string> args = with_plan_file(argc, argv, o.plan);
    // What the launcher took from the plan when it was made: ranks, threads and the device.
    nlohmann::json made;
    try {
      made = nlohmann::json::parse(topo::read_text_file(o.plan, "the run's basin.plan/1 file"));
    } catch (const nlohmann::json::exception& e) {
      throw topo::InputError(o.plan, "", std::string("JSON: ") + e.what());
    }
    if (!made.is_object()) throw topo::InputError(o.plan, "", "a JSON object (basin.plan/1), got " + made.dump());
    auto whole_at = [&](const char* key) {
      return made.contains(key) && made[key].is_number_integer() && made[key].get<long long>() > 0
                 ? static_cast<int>(std::min<long long>(made[key].get<long long>(), 1 << 20))
                 : 0;
    };
    if (!given("--nproc") && whole_at("world_size") > 0) o.nproc = whole_at("world_size");
    if (!given("--threads") && whole_at("threads_per_rank") > 0) {
      o.threads = whole_at("threads_per_rank");
      args.insert(args.end(), {"--threads", std::to_string(o.threads)});
    }
    if (!given("--device") && made.contains("device") && made["device"].is_string() && made["device"] != "cpu") {
      o.device = "gpu";
      args.insert(args.end(), {"--device", "gpu"});
    }
    if (!o.quiet) std::cerr << "basin: --plan auto --resume: the run's own plan, " << o.plan << "\n";
    return args;
  }
  if (!o.config.resume)
    for (const char* name : {"checkpoint.basin", "log.jsonl"})
      if (const auto f = std::filesystem::path(o.out) / name;
          std::filesystem::exists(f) && std::filesystem::file_size(f) > 0)
        throw topo::InputError("--out", "", "a directory without a run: " + f.string() +
                                                " exists (pass --resume to continue that run, or choose another "
                                                "directory); its plan is left as it was");
  AutoPlanRequest r;
  r.out = o.out;
  r.model = given("--blocks") ? std::string("resnet-custom") : o.config.model;
  r.batch_per_device = o.config.batch;
  r.epochs = o.config.epochs;
  r.dataset_images = static_cast<long long>(data::open_imagenet(o.data, !o.no_validate).train.samples.size());
  r.hwloc_xml = o.hwloc_xml;
  r.use_nvml = o.hwloc_xml.empty();  // an export describes another machine: not this one's driver
  r.ranks = given("--nproc") ? o.nproc : 0;
  const AutoPlan p = make_auto_plan(r);
  if (!o.quiet) std::cerr << "basin: --plan auto: " << p.summary << "\n";
  if (p.needs_gpus && !given("--device")) o.device = "gpu";
  o.plan = p.plan_path;
  if (!given("--nproc")) o.nproc = p.ranks;
  if (!given("--threads")) o.threads = p.threads_per_rank;
  std::vector<std::string> args = with_plan_file(argc, argv, p.plan_path);
  if (!given("--threads")) args.insert(args.end(), {"--threads", std::to_string(o.threads)});
  if (p.needs_gpus && !given("--device")) args.insert(args.end(), {"--device", "gpu"});
  return args;
}

}  // namespace basin::cli
