// The roll call after a failure: which rank hung or died.
//
// Gloo's errors cannot say which rank is at fault. A timeout names nobody, and a closed connection
// names whichever neighbour this rank's algorithm happened to be talking to, which after the first
// failure is as often a healthy rank that gave up as the one that died. So the first failure on a
// rank starts a roll call through the rendezvous store every rank already shares: close this rank's
// connections (peers blocked on it fail at once and join the call instead of waiting out their
// own timeout), write "<run_id>/rollcall/<rank>", and wait a short while for the other ranks'
// keys. A rank still running reaches a collective within a step, finds its peers gone and answers;
// a rank that is stopped, stuck or dead never does. Keys are written once per run, as Redis's
// SETNX (Gloo's RedisStore) requires.
#include "gloo_impl.h"

#include <algorithm>
#include <thread>

namespace basin::comm {
namespace {

std::string rank_list(const std::vector<int>& ranks) {
  std::string text;
  for (std::size_t i = 0; i < ranks.size(); ++i)
    text += (i == 0 ? "" : i + 1 == ranks.size() ? " and " : ", ") + std::to_string(ranks[i]);
  return text;
}

}  // namespace

RollCall Communicator::Impl::roll_call(const std::string& operation) {
  RollCall call;
  const int world = config.world_size, me = config.rank;
  if (world < 2 || !store.store) return call;
  const auto window = roll_call_window(config.timeout);
  auto key = [&](int r) { return config.run_id + "/rollcall/" + std::to_string(r); };
  // The hierarchical allreduce's meshes too: a peer blocked in its server's reduce must fail at
  // once as well.
  for (gloo::rendezvous::Context* mesh : {context.get(), hierarchy ? hierarchy->server.get() : nullptr,
                                          hierarchy ? hierarchy->leaders.get() : nullptr}) {
    try {
      if (mesh) mesh->closeConnections();
    } catch (const std::exception&) {
      // Pairs already broken by the failure itself: nothing left to close.
    }
  }
  try {
    store.store->set(key(me), std::vector<char>(operation.begin(), operation.end()));
    for (int r = 0; r < world; ++r)
      if (r != me) call.silent.push_back(r);
    const auto deadline = std::chrono::steady_clock::now() + window;
    while (true) {
      for (auto it = call.silent.begin(); it != call.silent.end();) {
        if (store.has(key(*it))) {
          call.answered.push_back(*it);
          it = call.silent.erase(it);
        } else {
          ++it;
        }
      }
      if (call.silent.empty() || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } catch (const std::exception& e) {
    call.silent.clear();
    call.answered.clear();
    call.text = "; the roll call through the " + store.where + " failed (" + e.what() + "), so the silent rank is unknown";
    return call;
  }
  std::sort(call.answered.begin(), call.answered.end());
  const std::string ms = std::to_string(window.count()) + " ms";
  if (call.silent.empty()) {
    call.text = "; every other rank answered the roll call through the " + store.where + " (each failed as well)";
  } else {
    const bool one = call.silent.size() == 1;
    call.text = std::string("; ") + (one ? "rank " : "ranks ") + rank_list(call.silent) +
                " did not answer the roll call through the " + store.where + " within " + ms +
                (one ? ": it is hung, stopped, dead or cut off" : ": they are hung, stopped, dead or cut off");
    if (!call.answered.empty())
      call.text += " (" + std::string(call.answered.size() == 1 ? "rank " : "ranks ") + rank_list(call.answered) +
                   " answered: " + (call.answered.size() == 1 ? "it was" : "they were") + " waiting too)";
  }
  return call;
}

std::string Communicator::roll_call(const std::string& operation, std::vector<int>* silent) {
  const std::lock_guard lock(impl_->failure_mutex);
  if (!impl_->broken.empty()) return "";
  const RollCall call = impl_->roll_call(operation);
  impl_->broken = "rank " + std::to_string(impl_->config.rank) + ": " + operation + " failed outside Gloo" + call.text;
  if (silent) *silent = call.silent;
  return call.text;
}

}  // namespace basin::comm
