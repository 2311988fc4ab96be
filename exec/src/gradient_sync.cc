// The gradient path between backward and the optimizer (see train_parts.h): micro-batch
// accumulation in one process (the backend's flat operations, so it runs where the gradients
// live), bucketed allreduce across ranks overlapped with backward (through the transport of
// gradient_transport.h that fits the backend), and validation sharded across ranks.
//
// Buckets follow Net's promise that finished gradients are a prefix of the flat array: a bucket
// is the stretch between the last submitted offset and the newly finished prefix, submitted once
// it holds bucket_mb (or, with bucket_mb 0, after every layer with parameters, as Goyal et al.
// allreduced each layer's gradient as soon as backprop produced it).
#include "train_parts.h"

#if BASIN_HAVE_NCCL
#include "gpu/nccl_transport.h"
#endif

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace basin::exec::detail {

template <class F>
decltype(auto) GradientSync::saying(const char* doing, F&& f) {
  try {
    return f();
  } catch (const comm::CommError& e) {
    throw comm::CommError(place_ + ", " + doing + ": " + e.what(), e.rank, e.peer, e.timed_out);
  }
}

GradientSync::GradientSync(Net& net, const TrainConfig& config) : net_(net), config_(config) {
  Backend& backend = net.backend();
  const bool device = backend.on_device();
  const bool nccl = config.gpu_collective == TrainConfig::GpuCollective::nccl;
  const bool nccl_gloo = config.gpu_collective == TrainConfig::GpuCollective::nccl_gloo;
  if ((nccl || nccl_gloo) && !device)
    throw std::invalid_argument("gpu_collective: gloo for the " + backend.name() +
                                " backend (NCCL sums device memory: it needs a GPU backend)");
  bucket_floats_ = static_cast<long long>(std::llround(config.bucket_mb * 1e6 / sizeof(float)));
  const auto total = static_cast<long long>(net.grads().size());
  if (config.micro_batches > 1) accumulated_ = backend.alloc_flat(total);
  if (!config.comm || config.comm->world_size() == 1) return;
  const comm::AllreduceOptions& a = config.allreduce;
  const int ranks = config.comm->world_size(), per_server = std::max(1, config.comm->local_world_size());
  auto count = [](int n, const char* what) { return std::to_string(n) + " " + what + (n == 1 ? "" : "s"); };
  const std::string gloo =
      a.algorithm == comm::Algorithm::hierarchical
          ? "Gloo's hierarchical allreduce (" + count(ranks / per_server, "server") + " of " +
                count(per_server, "rank") + ", " + comm::name(a.inter) + " between)"
          : std::string("Gloo's ") + comm::name(a.algorithm);
  const std::string wire = std::string(", ") + comm::name(a.precision) + " on the wire";
  if (!device) path_ = gloo + wire;
  else if (nccl_gloo)
    path_ = "NCCL's reduce in each of " + count(ranks / per_server, "server") + " of " + count(per_server, "rank") +
            ", Gloo's " + comm::name(a.inter) + " between their first ranks through host memory, NCCL's broadcast" + wire;
  else if (!nccl) path_ = gloo + wire + ", every bucket staged through host memory";
  else {
    const char* algorithm = nccl_algo_name(config.nccl_algorithm);
    path_ = std::string("NCCL (") + (algorithm ? algorithm : "its tuner's algorithm") + ")" + wire;
  }
  if (!device) {
    transport_ = make_host_transport(*config.comm, net.grads(), config.allreduce);
  } else if (nccl_gloo) {
#if BASIN_HAVE_NCCL
    transport_ = make_hierarchical_nccl_transport(backend, *config.comm, net.grads(), config.allreduce);
#else
    throw std::invalid_argument("gpu_collective: gloo (this basin was built without NCCL, which runs the phases "
                                "inside each server: nccl.h and libnccl were not found next to the CUDA toolkit)");
#endif
  } else if (!nccl) {
    transport_ = make_staged_transport(backend, *config.comm, net.grads(), config.allreduce);
  } else {
#if BASIN_HAVE_NCCL
    transport_ = make_nccl_transport(backend, *config.comm, net.grads(), config.nccl_algorithm,
                                     config.allreduce.precision);
#else
    throw std::invalid_argument("gpu_collective: gloo (this basin was built without NCCL: nccl.h and "
                                "libnccl were not found next to the CUDA toolkit)");
#endif
  }
}

GradientSync::~GradientSync() = default;

void GradientSync::backward(int micro, int micros, const std::function<void(int)>& on_layer) {
  saying("in backward", [&] { backward_and_submit(micro, micros, on_layer); });
}

void GradientSync::backward_and_submit(int micro, int micros, const std::function<void(int)>& on_layer) {
  Backend& backend = net_.backend();
  const long long total = static_cast<long long>(net_.grads().size());
  float* const g = net_.grads().data();
  float* const acc = accumulated_.get();
  const bool last = micro == micros - 1;
  // Only the last micro-batch's backward can overlap communication: before it, the sums are
  // not final.
  const bool stream = transport_ && last && config_.overlap;
  submitted_ = summed_ = 0;
  net_.backward([&](int step, long long ready) {
    if (on_layer) on_layer(step);
    if (!stream) return;
    if (micros > 1) {  // finish this stretch of the sum before it travels
      backend.accumulate(g + summed_, acc + summed_, ready - summed_);
      summed_ = ready;
    }
    if (ready - submitted_ >= std::max(1LL, bucket_floats_)) {
      transport_->submit(submitted_, ready - submitted_);
      submitted_ = ready;
    }
  });
  if (micros > 1 && !last) {
    if (micro == 0) backend.copy_flat(acc, g, total);
    else backend.accumulate(acc, g, total);
    return;
  }
  if (micros > 1)  // all of it without streaming, else the stretch after the last report (if any)
    backend.accumulate(g + summed_, acc + summed_, total - summed_);
  if (!transport_) return;
  if (!stream && bucket_floats_ > 0) {
    // Without overlap: the same buckets, all after backward.
    for (long long at = 0; at < total; at += bucket_floats_)
      transport_->submit(at, std::min(bucket_floats_, total - at));
  } else if (!stream) {
    // One per layer: the tensors of a backward step sit next to each other in buffer order.
    const auto& params = net_.param_info();
    for (size_t i = 0; i < params.size();) {
      long long count = 0;
      size_t j = i;
      for (; j < params.size() && params[j].backward_step == params[i].backward_step; ++j)
        count += params[j].count;
      transport_->submit(params[i].offset, count);
      i = j;
    }
  } else if (submitted_ < total) {
    transport_->submit(submitted_, total - submitted_);
  }
}

double GradientSync::wait(Clock::time_point t0, std::vector<MeasuredSpan>* spans) {
  if (!transport_) return 0;
  const auto before = Clock::now();
  const std::vector<comm::BucketTiming> timings =
      saying("waiting for the gradient allreduce", [&] { return transport_->wait(); });
  const double blocked = seconds_between(before, Clock::now());
  if (spans)
    for (const comm::BucketTiming& b : timings)
      spans->push_back({"allreduce " + std::to_string(b.count * 4) + " B at " +
                            std::to_string(b.offset * 4),
                        "allreduce", seconds_between(t0, b.start), seconds_between(t0, b.end)});
  return blocked;
}

void GradientSync::sum(std::vector<float>& values, const char* what) {
  if (!config_.comm || config_.comm->world_size() == 1) return;
  if (values.size() > scalars_.size())
    throw std::logic_error("GradientSync::sum: at most 4 values");
  std::fill(scalars_.begin(), scalars_.end(), 0.f);
  std::copy(values.begin(), values.end(), scalars_.begin());
  saying(what, [&] { config_.comm->allreduce(scalars_, {.algorithm = comm::Algorithm::ring_chunked}); });
  std::copy(scalars_.begin(), scalars_.begin() + static_cast<long>(values.size()), values.begin());
}

Accuracy evaluate(Net& net, const std::vector<data::Sample>& samples, const data::Transform& t,
                  int threads, std::uint64_t seed, GradientSync& sync, bool raw_input) {
  comm::Communicator* comm = sync.comm();
  const int rank = comm ? comm->rank() : 0, ranks = comm ? comm->world_size() : 1;
  data::LoaderConfig lc{.transform = t, .batch_size = net.batch(), .threads = threads,
                        .seed = seed, .shuffle = false, .rank = rank, .world_size = ranks};
  if (raw_input) lc.output = data::LoaderOutput::raw;
  const int classes = net.network().classes, k = std::min(5, classes);
  const size_t per_image = 3ull * t.output_size() * t.output_size();
  std::vector<float> input(per_image * net.batch());
  // loss, top-1 hits, top-k hits, images: summed over ranks as floats (exact for counts < 2^24).
  std::vector<float> totals(4, 0.f);
  if (data::shard_size(static_cast<std::int64_t>(samples.size()), rank, ranks) > 0) {
    data::Loader loader(samples, lc);
    for (std::int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
      const data::Batch batch = loader.next();
      if (raw_input) {
        net.forward(batch, t.normalization, Mode::eval);  // pads a short batch with zeros
      } else {
        std::fill(input.begin(), input.end(), 0.f);
        std::copy(batch.pixels.begin(), batch.pixels.end(), input.begin());
        net.forward(input.data(), Mode::eval);
      }
      const std::vector<float> logits = net.logits();
      for (int i = 0; i < batch.size; ++i) {
        // A slot whose file was unreadable holds a later image of the shard (the loader fills
        // every slot): a duplicate, counted where it is its own.
        if (batch.stand_in[static_cast<size_t>(i)]) continue;
        const float* row = logits.data() + static_cast<size_t>(i) * classes;
        const int label = batch.labels[i];
        const float top = *std::max_element(row, row + classes);
        double sum = 0;
        int above = 0;  // classes scoring strictly higher than the label (ties favour the label)
        for (int j = 0; j < classes; ++j) {
          sum += std::exp(double(row[j]) - top);
          above += row[j] > row[label];
        }
        totals[0] += static_cast<float>(std::log(sum) - (double(row[label]) - top));
        totals[1] += above == 0;
        totals[2] += above < k;
        totals[3] += 1;
      }
    }
  }
  sync.sum(totals, "summing the validation results");
  if (totals[3] == 0) return {};
  return {totals[0] / totals[3], totals[1] / totals[3], totals[2] / totals[3], std::llround(totals[3])};
}

}  // namespace basin::exec::detail
