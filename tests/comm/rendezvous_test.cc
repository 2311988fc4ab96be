// Rendezvous: through a FileStore in a temporary directory with threads and with forked
// processes, a rendezvous some ranks never reach (the error names the directory and the absent
// ranks), and through a redis-server the test starts itself on a free loopback port.
#include "comm_test_util.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include "../catch.h"

#if BASIN_HAVE_GLOO

using namespace basin::comm;
using namespace basin::comm::test;
using Catch::Matchers::Contains;

namespace {

RendezvousConfig file_config(int rank, int world, const std::string& dir, milliseconds timeout) {
  RendezvousConfig c;
  c.rank = rank;
  c.world_size = world;
  c.store = StoreKind::file;
  c.file_dir = dir;
  c.timeout = timeout;
  return c;
}

// One rank's whole job in the process tests: connect, two allreduces, check; exit status 0 = ok.
int rank_job(const RendezvousConfig& config) {
  auto comm = connect(config);
  for (Algorithm algorithm : {Algorithm::ring_chunked, Algorithm::halving_doubling}) {
    auto data = rank_vector(config.rank, 1000);
    comm->allreduce(data, {.algorithm = algorithm});
    for (long long i = 0; i < 1000; ++i)
      if (data[static_cast<std::size_t>(i)] != expected_sum(config.world_size, i)) return 1;
  }
  return 0;
}

int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("comm rendezvous: file store with threads", "[comm]") {
  TempDir dir;
  const int world = 4;
  std::vector<int> codes(world, -1);
  const auto errors = on_threads(world, [&](int r) {
    codes[static_cast<std::size_t>(r)] = rank_job(file_config(r, world, (dir.path / "rdzv").string(), milliseconds(10000)));
  });
  CHECK(join_errors(errors) == "");
  CHECK(codes == std::vector<int>(world, 0));
}

TEST_CASE("comm rendezvous: file store with forked processes", "[comm]") {
  TempDir dir;
  const int world = 3;
  const auto pids = fork_ranks({0, 1, 2}, [&](int r) {
    return rank_job(file_config(r, world, dir.path.string(), milliseconds(10000)));
  });
  CHECK(wait_children(pids, milliseconds(20000)) == std::vector<int>(world, 0));
}

TEST_CASE("comm rendezvous: rank 0's bytes reach every rank through the store", "[comm]") {
  // 128 bytes, as an NCCL unique id, with zeros inside (not a C string).
  std::vector<char> id(128);
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<char>(i % 3 == 0 ? 0 : i);
  for (int world : {1, 3}) {
    ThreadMesh mesh = connect_threads(world);
    std::vector<std::vector<char>> got(static_cast<std::size_t>(world));
    const auto errors = on_threads(world, [&](int r) {
      got[static_cast<std::size_t>(r)] = mesh[static_cast<std::size_t>(r)]->share("nccl-unique-id", r == 0 ? id : std::vector<char>{});
    });
    CHECK(join_errors(errors) == "");
    for (const auto& g : got) CHECK(g == id);
  }
}

TEST_CASE("comm rendezvous: a shared key rank 0 never writes is named after the timeout", "[comm]") {
  ThreadMesh mesh = connect_threads(2, milliseconds(1000));
  const auto start = std::chrono::steady_clock::now();
  std::string text;
  int peer = -2;
  try {
    mesh[1]->share("never-written");
  } catch (const CommError& e) {
    text = e.what();
    peer = e.peer;
  }
  CHECK_THAT(text, Contains("never-written") && Contains("rank 0") && Contains("in-process store"));
  CHECK(peer == 0);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
}

TEST_CASE("comm rendezvous: ranks that never appear are named with the directory", "[comm]") {
  TempDir dir;
  const int world = 4;
  std::vector<std::string> messages(2);
  std::vector<int> timed_out(2, 0);
  on_threads(2, [&](int i) {
    const int rank = i == 0 ? 0 : 2;  // ranks 1 and 3 never start
    try {
      connect(file_config(rank, world, dir.path.string(), milliseconds(500)));
    } catch (const CommError& e) {
      messages[static_cast<std::size_t>(i)] = e.what();
      timed_out[static_cast<std::size_t>(i)] = e.timed_out;
    }
  });
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK_THAT(messages[i], Contains(dir.path.string()) && Contains("ranks that never appeared: 1, 3") &&
                                Contains("500 ms") && Contains(i == 0 ? "rank 0" : "rank 2"));
    CHECK(timed_out[i] == 1);
  }
}

TEST_CASE("comm rendezvous: bad config fields are named", "[comm]") {
  RendezvousConfig c;
  c.world_size = 2;
  c.rank = 2;
  CHECK_THROWS_WITH(connect(c), Contains("rank 2") && Contains("[0, 1]"));
  c.rank = 0;
  c.file_dir = "";
  CHECK_THROWS_WITH(connect(c), Contains("file_dir is empty"));
  c.store = StoreKind::in_process;
  CHECK_THROWS_WITH(connect(c), Contains("in_process is null"));
}

#if BASIN_COMM_HAVE_REDIS
TEST_CASE("comm rendezvous: an unreachable redis-server is named by host and port", "[comm]") {
  RendezvousConfig c;
  c.world_size = 2;
  c.store = StoreKind::redis;
  c.redis_host = "127.0.0.1";
  c.redis_port = free_loopback_port();  // nothing listens there
  CHECK_THROWS_WITH(connect(c), Contains("redis-server 127.0.0.1:" + std::to_string(c.redis_port)));
}
#endif

#ifdef BASIN_COMM_REDIS_SERVER
// True once a redis-server answers PING on 127.0.0.1:port.
static bool redis_answers(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const char ping[] = "PING\r\n";
    char reply[8] = {};
    ok = write(fd, ping, sizeof ping - 1) == static_cast<ssize_t>(sizeof ping - 1) && read(fd, reply, 5) == 5 &&
         std::string(reply, 5) == "+PONG";
  }
  close(fd);
  return ok;
}

// Starts a redis-server on a free loopback port and returns (pid, port) once it answers PING.
// The ranks must not start before that: free_loopback_port() closes its probe socket, and until
// redis-server binds, that port is free for anyone's bind(0), including the Gloo listeners the
// ranks create on every connection attempt. A rank's listener that took the port made redis-server
// exit ("Address already in use") and the other ranks' RedisStore talk to that rank's Gloo
// listener instead. (This window is closed here; the halving-doubling flake is not Redis's: the
// file-store thread test failed the same way under `ctest -j2`, "rank 0 stopped answering".)
static std::pair<pid_t, int> start_redis() {
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int port = free_loopback_port();
    const pid_t pid = fork_ranks({0}, [&](int) {
      const std::string p = std::to_string(port);
      std::freopen("/dev/null", "w", stdout);  // its start-up banner is not test output
      execl(BASIN_COMM_REDIS_SERVER, "redis-server", "--port", p.c_str(), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--loglevel", "warning", static_cast<char*>(nullptr));
      return 97;  // exec failed
    })[0];
    for (int i = 0; i < 500; ++i) {
      if (redis_answers(port)) return {pid, port};
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) break;  // it exited: the port was taken, try another
      std::this_thread::sleep_for(milliseconds(10));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  throw std::runtime_error("redis-server never answered PING on a free loopback port (5 ports tried)");
}

TEST_CASE("comm rendezvous: redis store with threads", "[comm]") {
  const auto [server, port] = start_redis();
  const int world = 3;
  std::vector<int> codes(world, -1);
  const std::string run_id = unique_run_id("redis");
  const auto errors = on_threads(world, [&](int r) {
    RendezvousConfig c;
    c.rank = r;
    c.world_size = world;
    c.store = StoreKind::redis;
    c.redis_host = "127.0.0.1";
    c.redis_port = port;
    c.run_id = run_id;
    c.timeout = milliseconds(10000);
    codes[static_cast<std::size_t>(r)] = rank_job(c);
  });
  kill(server, SIGTERM);
  wait_children({server}, milliseconds(5000));
  CHECK(join_errors(errors) == "");
  CHECK(codes == std::vector<int>(world, 0));
}
#endif

#endif
