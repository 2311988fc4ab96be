// Rendezvous configuration from the environment, under torchrun's names (RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) plus basin's store choice, so `torchrun`-style launchers
// and Slurm wrappers start basin ranks unchanged. Needs no Gloo: bad values are reported even
// on builds without it. Also the roll call's share of the timeout, which every build needs.
#include <basin/comm.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <optional>

namespace basin::comm {
namespace {

[[noreturn]] void bad(const std::string& variable, const std::string& value, const std::string& expected) {
  throw CommError("environment variable " + variable + "=\"" + value + "\": expected " + expected);
}

long long parse_integer(const std::string& variable, const std::string& value, long long lo, long long hi,
                        const std::string& expected) {
  if (value.empty()) bad(variable, value, expected);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(value.c_str(), &end, 10);
  if (errno != 0 || end == value.c_str() || *end != '\0' || v < lo || v > hi) bad(variable, value, expected);
  return v;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

RendezvousConfig rendezvous_from_env() {
  return rendezvous_from_env([](const char* name) -> const char* { return std::getenv(name); });
}

RendezvousConfig rendezvous_from_env(const Getenv& getenv) {
  auto get = [&](const char* name) -> std::optional<std::string> {
    const char* v = getenv(name);
    if (!v) return std::nullopt;
    return std::string(v);
  };
  RendezvousConfig config;
  constexpr long long int_max = std::numeric_limits<int>::max();

  const auto world = get("WORLD_SIZE");
  if (!world) throw CommError("environment variable WORLD_SIZE is not set: expected the number of ranks (an integer >= 1)");
  config.world_size = static_cast<int>(parse_integer("WORLD_SIZE", *world, 1, int_max, "an integer >= 1"));

  const auto rank = get("RANK");
  if (!rank) throw CommError("environment variable RANK is not set: expected this rank's index in [0, WORLD_SIZE)");
  const std::string rank_range = "an integer in [0, " + std::to_string(config.world_size - 1) + "] (WORLD_SIZE=" +
                                 std::to_string(config.world_size) + ")";
  config.rank = static_cast<int>(parse_integer("RANK", *rank, 0, config.world_size - 1, rank_range));

  if (const auto local = get("LOCAL_RANK"))
    config.local_rank = static_cast<int>(parse_integer("LOCAL_RANK", *local, 0, config.world_size - 1, rank_range));
  if (const auto local_world = get("LOCAL_WORLD_SIZE"))
    config.local_world_size = static_cast<int>(
        parse_integer("LOCAL_WORLD_SIZE", *local_world, 1, config.world_size,
                      "an integer in [1, " + std::to_string(config.world_size) + "] (WORLD_SIZE=" +
                          std::to_string(config.world_size) + ")"));

  const auto master_addr = get("MASTER_ADDR");
  const auto master_port = get("MASTER_PORT");
  if (master_addr && master_addr->empty()) bad("MASTER_ADDR", "", "a host name or address");
  int port = 0;
  if (master_port) port = static_cast<int>(parse_integer("MASTER_PORT", *master_port, 1, 65535, "a TCP port in [1, 65535]"));

  const auto dir = get("BASIN_RENDEZVOUS_DIR");
  const auto redis = get("BASIN_REDIS");
  if (dir && redis)
    throw CommError("environment variables BASIN_RENDEZVOUS_DIR and BASIN_REDIS are both set: expected exactly one store");
  if (dir) {
    if (dir->empty()) bad("BASIN_RENDEZVOUS_DIR", "", "a directory every rank can see (a shared file system)");
    config.store = StoreKind::file;
    config.file_dir = *dir;
  } else if (redis) {
    config.store = StoreKind::redis;
    if (*redis == "master") {
      if (!master_addr || !master_port)
        throw CommError("environment variable BASIN_REDIS=\"master\": expected MASTER_ADDR and MASTER_PORT to be set "
                        "to the redis-server's host and port");
      config.redis_host = *master_addr;
      config.redis_port = port;
    } else {
      const auto colon = redis->rfind(':');
      if (colon == std::string::npos || colon == 0)
        bad("BASIN_REDIS", *redis, "host:port of a redis-server, or \"master\" for MASTER_ADDR:MASTER_PORT");
      config.redis_host = redis->substr(0, colon);
      const std::string port_text = redis->substr(colon + 1);
      char* end = nullptr;
      const long v = std::strtol(port_text.c_str(), &end, 10);
      if (port_text.empty() || *end != '\0' || v < 1 || v > 65535)
        bad("BASIN_REDIS", *redis, "host:port with a port in [1, 65535]");
      config.redis_port = static_cast<int>(v);
    }
  } else {
    throw CommError(
        "no rendezvous store: set BASIN_RENDEZVOUS_DIR to a directory every rank can see, or BASIN_REDIS to "
        "host:port of a redis-server (\"master\" for MASTER_ADDR:MASTER_PORT); Gloo 0.0~git20220518 has no TCP "
        "store, so MASTER_ADDR/MASTER_PORT alone cannot rendezvous");
  }

  if (const auto ifname = get("GLOO_SOCKET_IFNAME")) {
    if (ifname->empty()) bad("GLOO_SOCKET_IFNAME", "", "a network interface name such as eth0");
    config.interface = *ifname;
  }
  if (const auto bind = get("BASIN_BIND_ADDR")) {
    if (bind->empty()) bad("BASIN_BIND_ADDR", "", "an address or host name of this machine to listen on");
    config.address = *bind;
  } else if (master_addr && !is_loopback(*master_addr)) {
    // The master is elsewhere, so loopback would be unreachable: listen on this host's name.
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) == 0) config.address = host;
  }

  if (const auto t = get("BASIN_TIMEOUT_S")) {
    char* end = nullptr;
    const double s = std::strtod(t->c_str(), &end);
    if (t->empty() || *end != '\0' || !(s > 0) || s > 86400)
      bad("BASIN_TIMEOUT_S", *t, "a number of seconds in (0, 86400]");
    config.timeout = std::chrono::milliseconds(static_cast<long long>(s * 1000 + 0.5));
    if (config.timeout.count() == 0) config.timeout = std::chrono::milliseconds(1);
  }
  if (const auto id = get("BASIN_RUN_ID")) {
    if (id->empty()) bad("BASIN_RUN_ID", "", "a non-empty name for this run");
    config.run_id = *id;
  }
  return config;
}

std::chrono::milliseconds roll_call_window(std::chrono::milliseconds timeout) {
  return std::clamp<std::chrono::milliseconds>(timeout / 5, std::chrono::milliseconds(100),
                                               std::chrono::milliseconds(5000));
}

}  // namespace basin::comm
