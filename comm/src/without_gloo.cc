// Built instead of rendezvous.cc and allreduce.cc when Gloo (libgloo-dev) is missing, as on the
// GPU machines: the layer still links, configuration and algorithm rules still work, and any
// attempt to connect says plainly why it cannot.
#include <basin/comm.h>

namespace basin::comm {

struct InProcessStore {};
struct Communicator::Impl {};

std::shared_ptr<InProcessStore> make_in_process_store() { return std::make_shared<InProcessStore>(); }

std::unique_ptr<Communicator> connect(const RendezvousConfig& config) {
  throw CommError("rank " + std::to_string(config.rank) +
                      ": basin was built without Gloo (libgloo-dev): no CPU collectives in this build",
                  config.rank);
}

// A Communicator cannot be constructed without Gloo; these exist only so the layer links.
Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Communicator::~Communicator() = default;
void Communicator::leave_on_failure() {}
int Communicator::rank() const { return 0; }
int Communicator::world_size() const { return 1; }
int Communicator::local_rank() const { return 0; }
int Communicator::local_world_size() const { return 1; }
std::chrono::milliseconds Communicator::timeout() const { return {}; }
std::size_t Communicator::cached_algorithms() const { return 0; }
void Communicator::allreduce(std::span<float>, const AllreduceOptions&) {
  throw CommError("basin was built without Gloo (libgloo-dev)");
}
void Communicator::barrier() { throw CommError("basin was built without Gloo (libgloo-dev)"); }
std::string Communicator::roll_call(const std::string&, std::vector<int>*) { return ""; }
std::vector<char> Communicator::share(const std::string&, std::vector<char>) {
  throw CommError("basin was built without Gloo (libgloo-dev): no rendezvous store to share through");
}

}  // namespace basin::comm
