// The parts of comm that need no network and no Gloo: the environment variables (torchrun's and
// basin's) and their errors, which algorithm runs on which world size, and the names of the
// algorithms and wire precisions. (The 16-bit roundings are kernels', tested in tests/kernels.)
#include <basin/comm.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "../catch.h"

using namespace basin::comm;

namespace {

Getenv env(std::map<std::string, std::string> vars) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [shared](const char* name) -> const char* {
    auto it = shared->find(name);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

std::string error_of(const Getenv& getenv) {
  try {
    rendezvous_from_env(getenv);
  } catch (const CommError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("comm env: torchrun variables and a file store", "[comm]") {
  const auto c = rendezvous_from_env(env({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                                          {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"},
                                          {"BASIN_RENDEZVOUS_DIR", "/shared/rdzv"}, {"BASIN_TIMEOUT_S", "2.5"},
                                          {"BASIN_RUN_ID", "job42"}}));
  CHECK(c.rank == 3);
  CHECK(c.world_size == 8);
  CHECK(c.local_rank == 1);
  CHECK(c.local_world_size == 2);
  CHECK(hierarchy_reason(c, Algorithm::halving_doubling) == "");  // rank 3 = server 1 * 2 + local rank 1
  CHECK(c.store == StoreKind::file);
  CHECK(c.file_dir == "/shared/rdzv");
  CHECK(c.timeout == std::chrono::milliseconds(2500));
  CHECK(c.run_id == "job42");
  CHECK(c.address == "127.0.0.1");  // loopback master: listen on loopback
}

TEST_CASE("comm env: redis host and port or the master's", "[comm]") {
  auto c = rendezvous_from_env(env({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"BASIN_REDIS", "redis.example:6380"}}));
  CHECK(c.store == StoreKind::redis);
  CHECK(c.redis_host == "redis.example");
  CHECK(c.redis_port == 6380);
  CHECK(c.local_world_size == 1);  // without LOCAL_WORLD_SIZE every rank is a server of its own
  c = rendezvous_from_env(env({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"BASIN_REDIS", "master"},
                               {"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "7000"}, {"GLOO_SOCKET_IFNAME", "eth1"}}));
  CHECK(c.redis_host == "10.0.0.7");
  CHECK(c.redis_port == 7000);
  CHECK(c.interface == "eth1");
}

TEST_CASE("comm env: bad values name the variable and what was expected", "[comm]") {
  using Catch::Matchers::Contains;
  const std::map<std::string, std::string> ok{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"BASIN_RENDEZVOUS_DIR", "/tmp/x"}};
  auto with = [&](std::string key, std::string value) {
    auto vars = ok;
    vars[key] = value;
    return env(vars);
  };
  auto without = [&](std::string key) {
    auto vars = ok;
    vars.erase(key);
    return env(vars);
  };
  CHECK_THAT(error_of(with("WORLD_SIZE", "0")), Contains("WORLD_SIZE=\"0\"") && Contains("integer >= 1"));
  CHECK_THAT(error_of(with("WORLD_SIZE", "two")), Contains("WORLD_SIZE=\"two\""));
  CHECK_THAT(error_of(with("RANK", "2")), Contains("RANK=\"2\"") && Contains("[0, 1]"));
  CHECK_THAT(error_of(with("RANK", "-1")), Contains("RANK=\"-1\""));
  CHECK_THAT(error_of(with("RANK", "1x")), Contains("RANK=\"1x\""));
  CHECK_THAT(error_of(with("LOCAL_RANK", "5")), Contains("LOCAL_RANK=\"5\""));
  CHECK_THAT(error_of(with("LOCAL_WORLD_SIZE", "3")), Contains("LOCAL_WORLD_SIZE=\"3\"") && Contains("[1, 2]"));
  CHECK_THAT(error_of(with("LOCAL_WORLD_SIZE", "0")), Contains("LOCAL_WORLD_SIZE=\"0\""));
  CHECK_THAT(error_of(with("MASTER_PORT", "70000")), Contains("MASTER_PORT=\"70000\"") && Contains("[1, 65535]"));
  CHECK_THAT(error_of(with("BASIN_TIMEOUT_S", "-3")), Contains("BASIN_TIMEOUT_S=\"-3\"") && Contains("seconds"));
  CHECK_THAT(error_of(with("BASIN_REDIS", "nohost")), Contains("BASIN_REDIS") && Contains("both set"));
  CHECK_THAT(error_of(without("RANK")), Contains("RANK is not set"));
  CHECK_THAT(error_of(without("WORLD_SIZE")), Contains("WORLD_SIZE is not set"));
  CHECK_THAT(error_of(without("BASIN_RENDEZVOUS_DIR")), Contains("BASIN_RENDEZVOUS_DIR") && Contains("BASIN_REDIS"));
  auto redis = [&](std::string value) {
    auto vars = ok;
    vars.erase("BASIN_RENDEZVOUS_DIR");
    vars["BASIN_REDIS"] = value;
    return env(vars);
  };
  CHECK_THAT(error_of(redis("host:0")), Contains("BASIN_REDIS=\"host:0\"") && Contains("port in [1, 65535]"));
  CHECK_THAT(error_of(redis("host")), Contains("BASIN_REDIS=\"host\"") && Contains("host:port"));
  CHECK_THAT(error_of(redis("master")), Contains("MASTER_ADDR and MASTER_PORT"));
}

TEST_CASE("comm algorithms: which world sizes Gloo's algorithms accept", "[comm]") {
  for (int p = 1; p <= 8; ++p) {
    CHECK(unsupported_reason(Algorithm::ring, p).empty());
    CHECK(unsupported_reason(Algorithm::ring_chunked, p).empty());
    CHECK(unsupported_reason(Algorithm::halving_doubling, p).empty());
    CHECK(unsupported_reason(Algorithm::bcube, p, 2).empty() == (p <= 2));  // see algorithms.cc
  }
  CHECK_THAT(unsupported_reason(Algorithm::bcube, 4, 2), Catch::Matchers::Contains("wrong sums"));
  CHECK_THAT(unsupported_reason(Algorithm::bcube, 2, 3), Catch::Matchers::Contains("power of 3"));
  CHECK(!unsupported_reason(Algorithm::bcube, 4, 1).empty());
  CHECK(!unsupported_reason(Algorithm::ring, 0).empty());
  CHECK(parse_algorithm("halving_doubling") == Algorithm::halving_doubling);
  CHECK(parse_algorithm("halving-doubling") == Algorithm::halving_doubling);  // sim's spelling
  CHECK_THROWS_WITH(parse_algorithm("halving-doubled"), Catch::Matchers::EndsWith("got \"halving-doubled\""));
  CHECK_THROWS_WITH(parse_algorithm("tree"), Catch::Matchers::StartsWith("ring, ring_chunked"));
}

TEST_CASE("comm wire precisions: names and parsing", "[comm]") {
  for (auto p : {WirePrecision::fp32, WirePrecision::fp16, WirePrecision::bf16})
    CHECK(parse_wire_precision(name(p)) == p);
  CHECK(std::string(name(WirePrecision::bf16)) == "bf16");
  CHECK_THROWS_WITH(parse_wire_precision("fp8"), Catch::Matchers::Contains("\"fp8\": expected fp32, fp16 or bf16"));
}
