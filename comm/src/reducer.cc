// The bucketed, overlapped reducer: one communication thread allreduces gradient buckets in the
// order backward finishes them while the caller goes on computing, as Caffe2's data-parallel
// model did on Gloo. One thread, one bucket at a time: Gloo's algorithms on one context must run
// in the same order on every rank, and serializing them is what NCCL and Gloo do anyway.
#include <basin/comm.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

namespace basin::comm {

struct BucketReducer::State {
  Communicator& comm;
  std::span<float> gradients;
  AllreduceOptions options;

  std::mutex mutex;
  std::condition_variable work, finished;
  struct Job {
    BucketTiming timing;
    std::function<void()> before, after;
  };
  std::deque<Job> queue;
  std::vector<BucketTiming> done;
  std::size_t in_flight = 0;  // submitted and not yet done (queued or running)
  std::optional<CommError> error;
  bool stopping = false;
  std::thread thread;

  State(Communicator& c, std::span<float> g, AllreduceOptions o) : comm(c), gradients(g), options(o) {}

  void run() {
    std::unique_lock lock(mutex);
    while (true) {
      work.wait(lock, [&] { return stopping || !queue.empty(); });
      if (queue.empty()) return;  // stopping with nothing left
      Job job = std::move(queue.front());
      queue.pop_front();
      BucketTiming& bucket = job.timing;
      if (!error) {
        lock.unlock();
        std::optional<CommError> failed;
        try {
          if (job.before) job.before();
          bucket.start = std::chrono::steady_clock::now();
          comm.allreduce(gradients.subspan(static_cast<std::size_t>(bucket.offset), static_cast<std::size_t>(bucket.count)),
                         options);
        } catch (const CommError& e) {
          failed = CommError(describe(bucket) + e.what(), e.rank, e.peer, e.timed_out);
        } catch (const std::exception& e) {
          failed = CommError(describe(bucket) + e.what(), comm.rank());
        }
        bucket.end = std::chrono::steady_clock::now();
        if (!failed && job.after) job.after();
        lock.lock();
        if (failed && !error) error = std::move(failed);
        if (!failed) done.push_back(bucket);
      }
      // After an error the remaining buckets are dropped: the mesh is unusable.
      --in_flight;
      if (in_flight == 0) finished.notify_all();
    }
  }

  std::string describe(const BucketTiming& bucket) const {
    return "bucket (offset " + std::to_string(bucket.offset) + ", count " + std::to_string(bucket.count) +
           ") of the gradient array, reducer thread of rank " + std::to_string(comm.rank()) + ": ";
  }
};

BucketReducer::BucketReducer(Communicator& comm, std::span<float> gradients, AllreduceOptions options)
    : state_(std::make_unique<State>(comm, gradients, options)) {
  if (const auto why = unsupported_reason(options.algorithm, comm.world_size(), options.bcube_base); !why.empty())
    throw CommError("rank " + std::to_string(comm.rank()) + ": bucket reducer: " + why, comm.rank());
  state_->thread = std::thread([s = state_.get()] { s->run(); });
}

BucketReducer::~BucketReducer() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->work.notify_all();
  if (state_->thread.joinable()) state_->thread.join();
}

void BucketReducer::submit(long long offset, long long count, std::function<void()> before,
                           std::function<void()> after) {
  State& s = *state_;
  const long long size = static_cast<long long>(s.gradients.size());
  if (offset < 0 || count < 0 || offset > size || count > size - offset)
    throw CommError("rank " + std::to_string(s.comm.rank()) + ": bucket (offset " + std::to_string(offset) + ", count " +
                        std::to_string(count) + "): expected 0 <= offset and offset + count <= " + std::to_string(size) +
                        " (the gradient array's size)",
                    s.comm.rank());
  std::lock_guard lock(s.mutex);
  if (s.error)
    throw CommError("rank " + std::to_string(s.comm.rank()) + ": bucket reducer accepts no work after a failure: " +
                        s.error->what(),
                    s.error->rank, s.error->peer, s.error->timed_out);
  State::Job job{.timing = {.offset = offset, .count = count, .submitted = std::chrono::steady_clock::now()},
                 .before = std::move(before), .after = std::move(after)};
  s.queue.push_back(std::move(job));
  ++s.in_flight;
  s.work.notify_one();
}

std::vector<BucketTiming> BucketReducer::wait() {
  State& s = *state_;
  std::unique_lock lock(s.mutex);
  s.finished.wait(lock, [&] { return s.in_flight == 0; });
  if (s.error) throw *s.error;
  return std::exchange(s.done, {});
}

}  // namespace basin::comm
