// The plan file (`basin.plan/1`, docs/plan-format.md) that `basin plan` writes and `basin train`
// runs, and the plain-words comparison of two plans for what-if questions.
#include <basin/plan.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

namespace basin::plan {

nlohmann::json plan_document(const PlanResult& result, const PlanRow& row, const PlanOptions& o) {
  // Goyal et al. 2017: lr = 0.1 x global batch / 256, 5 warmup epochs ramping linearly from
  // 0.1 (from lr itself, no ramp, where the global batch is at most 256), x0.1 at epochs 30, 60 and 80, momentum 0.9, weight decay 1e-4 (not on BN or biases),
  // gamma = 0 for each residual block's last BN.
  const double base_lr = 0.1, lr = base_lr * static_cast<double>(row.global_batch) / 256;
  nlohmann::json schedule = {{"base_lr", base_lr},
                             {"base_batch", 256},
                             {"lr", lr},
                             {"warmup_epochs", 5},
                             {"warmup_start_lr", std::min(base_lr, lr)},  // exec::warmup_start's rule
                             {"decay", "step"},
                             {"milestones", {30, 60, 80}},
                             {"gamma", 0.1},
                             {"momentum", 0.9},
                             {"nesterov", false},
                             {"weight_decay", 1e-4},
                             {"weight_decay_on_bn_and_bias", false},
                             {"zero_init_last_bn_gamma", true}};
  nlohmann::json allreduce = {{"algorithm", row.algorithm.nccl_picks_algorithm
                                                ? "auto"
                                                : sim::to_string(row.algorithm.algorithm)},
                              {"library", row.library},
                              {"bucket_MB", row.bucket_MB}};
  if (row.algorithm.algorithm == sim::Algorithm::hierarchical)
    allreduce["inter"] = sim::to_string(row.algorithm.inter);
  if (row.algorithm.is_nccl()) allreduce["protocol"] = to_string(row.algorithm.protocol);
  return {
      {"format", "basin.plan/1"},
      {"cluster", o.cluster_spec.empty() ? result.cluster : o.cluster_spec},
      {"model", result.model},
      {"device", result.device},
      {"world_size", row.gpus},
      {"servers", row.servers()},
      {"gpus_per_server", row.even() ? nlohmann::json(row.ranks_per_server.front()) : nlohmann::json(row.ranks_per_server)},
      {"batch_per_device", row.batch_per_gpu},
      {"global_batch", row.global_batch},
      {"allreduce", allreduce},
      {"precision", {{"compute", sim::to_string(row.precision.compute)},
                     {"wire", sim::to_string(row.precision.wire)}}},
      {"lr_schedule", schedule},
      {"epochs", o.epochs},
      {"dataset_images", o.dataset_images},
      {"prediction",
       {{"iteration_s", row.iteration_s},
        {"epoch_s", row.epoch_s},
        {"images_per_s", row.images_per_s},
        {"time_to_train_h", row.time_to_train_h},
        {"scaling_efficiency", row.scaling_efficiency},
        {"compute_s", row.compute_s},
        {"exposed_comm_s", row.exposed_comm_s},
        {"data_stall_s", row.data_stall_s},
        {"input_basis", row.input_basis},
        {"compute_estimated", row.compute_estimated},
        {"compute_basis", row.compute_basis},
        {"memory_GB", row.memory_GB},
        {"gpu_hours", row.gpu_hours},
        {"cost", row.cost},
        {"accuracy_penalty_top1_points", row.accuracy_penalty},
        {"bottleneck", row.bottleneck()}}}};
}

std::string train_command(const std::string& plan_path, const PlanRow& row) {
  const std::string command = "basin train --plan " + plan_path + " --data <imagenet-root> --device gpu";
  if (row.gpus <= 1) return command;
  if (row.servers() <= 1) return command + " --nproc " + std::to_string(row.gpus);
  // Across servers the ranks are started there, as torchrun starts them (comm/README.md).
  const std::string each = row.even() ? std::to_string(row.ranks_per_server.front()) + " ranks on each of " +
                                            std::to_string(row.servers()) + " servers"
                                      : "ranks " + row.placement() + " on " + std::to_string(row.servers()) + " servers";
  return command + ", as " + each + " (RANK, WORLD_SIZE=" + std::to_string(row.gpus) +
         ", LOCAL_RANK, LOCAL_WORLD_SIZE = that server's ranks, and a shared store, as torchrun sets them: "
         "comm/README.md)";
}

std::string explain_difference(const PlanRow& a, const std::string& a_name, const PlanRow& b,
                               const std::string& b_name) {
  char buf[1024];
  const double ratio = b.time_to_train_h / a.time_to_train_h;
  std::string out;
  std::snprintf(buf, sizeof buf, "%s trains in %.2f h, %s in %.2f h (%s is %.2fx %s).\n",
                a_name.c_str(), a.time_to_train_h, b_name.c_str(), b.time_to_train_h,
                b_name.c_str(), ratio > 1 ? ratio : 1 / ratio, ratio > 1 ? "slower" : "faster");
  out += buf;
  std::snprintf(buf, sizeof buf,
                "  per iteration: compute %.4f s vs %.4f s, exposed communication %.4f s vs %.4f s, "
                "input stall %.4f s vs %.4f s\n",
                a.compute_s, b.compute_s, a.exposed_comm_s, b.exposed_comm_s, a.data_stall_s,
                b.data_stall_s);
  out += buf;
  out += "  bound by: " + a_name + " " + a.bottleneck() + ", " + b_name + " " + b.bottleneck() + "\n";
  if (a.gpus != b.gpus || a.global_batch != b.global_batch) {
    std::snprintf(buf, sizeof buf, "  the best plans differ: %d GPUs x %d vs %d GPUs x %d\n",
                  a.gpus, a.batch_per_gpu, b.gpus, b.batch_per_gpu);
    out += buf;
  }
  return out;
}

}  // namespace basin::plan
