// `basin select`: the fastest allreduce for every message size on a given set of GPUs, with the
// times of all candidates so the margin is visible. basin's own schedules are timed by the
// network engine alone. NCCL's ring and tree are timed per protocol the way NCCL's own tuner
// reasons (nccl_cost.cc): the engine's bandwidth term (which sees the topology and contention)
// scaled by the protocol's efficiency, and NCCL's published latency constants (what LL, LL128
// and Simple cost per step), so the choice lines up with the cells of NCCL's cost table that the
// tuner plugin sets.
#include <basin/plan.h>

#include "number_text.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>

namespace basin::plan {
namespace {

constexpr double kMaxSelectBytes = 1125899906842624.0;  // 2^50

std::string shortest(double x) { return detail::number_text("%g", x); }

}  // namespace

const char* to_string(Protocol p) {
  switch (p) {
    case Protocol::none: return "";
    case Protocol::ll: return "LL";
    case Protocol::ll128: return "LL128";
    case Protocol::simple: return "Simple";
    case Protocol::automatic: return "auto";
  }
  return "?";
}

bool PlanRow::even() const {
  return std::all_of(ranks_per_server.begin(), ranks_per_server.end(),
                     [&](int n) { return n == ranks_per_server.front(); });
}

std::string PlanRow::placement() const {
  if (even()) return std::to_string(servers()) + "x" + std::to_string(ranks_per_server.front());
  std::string out;
  for (int n : ranks_per_server) out += (out.empty() ? "" : "+") + std::to_string(n);
  return out;
}

std::string Choice::name() const {
  if (nccl_picks_algorithm) return "nccl";
  if (algorithm == sim::Algorithm::hierarchical)
    return std::string("hierarchical(") + sim::to_string(inter) + ")";
  std::string n = sim::to_string(algorithm);
  if (protocol == Protocol::automatic) n = "nccl-" + n;
  else if (protocol != Protocol::none) n = "nccl-" + n + "/" + to_string(protocol);
  return n;
}

Choice choice_from_string(const std::string& text, const std::string& origin) {
  Choice c;
  std::string name = text;
  if (name == "nccl") {
    c.protocol = Protocol::automatic;
    c.nccl_picks_algorithm = true;
    return c;
  }
  if (name.rfind("nccl", 0) == 0 && name.rfind("nccl-", 0) != 0)
    throw topo::InputError(origin, "", "nccl (NCCL's tuner picks), nccl-ring[/PROTO], nccl-tree[/PROTO], nccl-nvls/Simple, "
                                       "nccl-nvls-tree/Simple or nccl-collnet-chain/Simple, got '" + text + "'");
  if (name.rfind("nccl-", 0) == 0) {
    // No protocol: NCCL's tuner picks it per message size.
    const auto slash = name.find('/');
    const std::string proto = slash == std::string::npos ? "auto" : name.substr(slash + 1);
    c.protocol = proto == "LL" ? Protocol::ll : proto == "LL128" ? Protocol::ll128
                 : proto == "Simple" ? Protocol::simple : proto == "auto" ? Protocol::automatic : Protocol::none;
    if (c.protocol == Protocol::none)
      throw topo::InputError(origin, "", "protocol LL, LL128, Simple or auto, got '" + proto + "'");
    name = name.substr(5, slash == std::string::npos ? std::string::npos : slash - 5);
    c.algorithm = sim::algorithm_from_string(name, origin);
    const bool simple_only = c.algorithm == sim::Algorithm::nvls || c.algorithm == sim::Algorithm::nvls_tree ||
                             c.algorithm == sim::Algorithm::collnet_chain;
    if (simple_only && c.protocol == Protocol::automatic) c.protocol = Protocol::simple;  // the tuner's one choice
    if (simple_only && c.protocol != Protocol::simple)
      throw topo::InputError(origin, "", "NCCL's NVLS, NVLS-tree and CollNet chain with the Simple protocol only, got '" +
                                             text + "'");
    if (c.algorithm != sim::Algorithm::ring && c.algorithm != sim::Algorithm::tree && !simple_only)
      throw topo::InputError(origin, "", "NCCL's ring, tree, nvls, nvls-tree or collnet-chain, got '" + text + "'");
    return c;
  }
  if (auto colon = name.find(':'); colon != std::string::npos) {
    c.inter = sim::algorithm_from_string(name.substr(colon + 1), origin);
    if (c.inter == sim::Algorithm::hierarchical || c.inter == sim::Algorithm::nvls ||
        c.inter == sim::Algorithm::nvls_tree || c.inter == sim::Algorithm::collnet_chain)
      throw topo::InputError(origin, "", std::string("an algorithm between servers after ':', not ") +
                                             sim::to_string(c.inter) + ", got '" + text + "'");
    name = name.substr(0, colon);
  }
  c.algorithm = sim::algorithm_from_string(name, origin);
  // Only NCCL runs the switch's sums; the plan names it as NCCL's, which the GPU trainer can set.
  if (c.algorithm == sim::Algorithm::nvls || c.algorithm == sim::Algorithm::nvls_tree ||
      c.algorithm == sim::Algorithm::collnet_chain)
    throw topo::InputError(origin, "", std::string(sim::to_string(c.algorithm)) + " as NCCL's: nccl-" +
                                           sim::to_string(c.algorithm) + "/Simple, got '" + text + "'");
  return c;
}

std::vector<topo::Vertex> pick_gpus(const topo::Topology& topo, int ranks, int per_server) {
  return sim::gpus_in_use(topo, ranks, per_server, "--ranks");
}

double algbw_GBps(double bytes, double time_s) { return time_s > 0 ? bytes / time_s / 1e9 : 0; }
double busbw_GBps(double bytes, double time_s, int ranks) {
  return ranks > 1 ? algbw_GBps(bytes, time_s) * 2.0 * (ranks - 1) / ranks : 0;
}

Selection select_allreduce(const topo::Topology& topo, const SelectOptions& o) {
  // Bounded above: the ladder doubles from min to max, and an infinite max never ends.
  if (!(o.min_bytes >= 1) || !(o.max_bytes >= o.min_bytes) || !(o.max_bytes <= kMaxSelectBytes))
    throw topo::InputError("--min-bytes/--max-bytes", "",
                           "1 <= min <= max <= 2^50 (1 PiB), got " + shortest(o.min_bytes) + " and " +
                               shortest(o.max_bytes));
  // 0 means "every GPU" / "all of a server's"; a negative count is a mistake that would
  // otherwise quietly mean the same.
  if (o.ranks < 0) throw topo::InputError("--ranks", "", "0 (every GPU) or a rank count, got " + std::to_string(o.ranks));
  if (o.per_server < 0)
    throw topo::InputError("--per-server", "", "0 (all of a server's GPUs) or a rank count, got " +
                                                   std::to_string(o.per_server));
  Selection s;
  s.cluster = topo.name;
  s.min_bytes = o.min_bytes;
  s.max_bytes = o.max_bytes;
  const std::vector<topo::Vertex> gpus = pick_gpus(topo, o.ranks, o.per_server);
  s.ranks = static_cast<int>(gpus.size());
  std::set<int> servers;
  for (topo::Vertex v : gpus) servers.insert(topo.graph[v].server);
  s.servers = static_cast<int>(servers.size());

  s.candidates = o.candidates;
  if (s.candidates.empty()) {
    using A = sim::Algorithm;
    for (A a : {A::ring, A::halving_doubling, A::recursive_doubling, A::tree, A::bcube,
                A::torus_2d})
      s.candidates.push_back({a});
    if (s.servers > 1) s.candidates.push_back({A::hierarchical});
    if (o.nccl) {
      for (A a : {A::ring, A::tree})
        for (Protocol p : {Protocol::ll, Protocol::ll128, Protocol::simple})
          if (nccl_runs({a, p}, topo, gpus)) s.candidates.push_back({a, p});
      for (A a : {A::nvls, A::nvls_tree, A::collnet_chain})
        if (nccl_runs({a, Protocol::simple}, topo, gpus)) s.candidates.push_back({a, Protocol::simple});
    }
  }
  // The NCCL rules select writes name a protocol for every size range: a candidate that leaves it
  // to NCCL's tuner has none to name.
  for (const Choice& c : s.candidates)
    if (c.protocol == Protocol::automatic || c.nccl_picks_algorithm)
      throw std::invalid_argument("select_allreduce: NCCL candidates with an algorithm and a protocol (LL, LL128 or Simple)");
  for (const Choice& c : s.candidates) s.libraries.push_back(library_of(c, topo, gpus));
  sim::Network net(topo, o.network);
  std::vector<sim::CollectiveCost> costs;
  for (const Choice& c : s.candidates)
    costs.push_back(c.is_nccl() ? nccl_cost(net, gpus, c.algorithm, c.protocol)
                                : sim::allreduce_cost(net, gpus, c.algorithm, c.inter));

  for (double bytes = o.min_bytes; bytes <= o.max_bytes * (1 + 1e-12); bytes *= 2) {
    SizeRow row{bytes, {}, 0};
    for (const auto& c : costs) row.time_s.push_back(c.time_s(bytes));
    row.best = static_cast<int>(std::min_element(row.time_s.begin(), row.time_s.end()) -
                                row.time_s.begin());
    if (!s.rows.empty() && s.rows.back().best != row.best)
      s.crossovers.push_back({bytes, s.candidates[s.rows.back().best].name(),
                              s.candidates[row.best].name()});
    s.rows.push_back(std::move(row));
  }
  return s;
}

tuner::Selection nccl_rules(const Selection& s) {
  tuner::Selection out;
  out.source = "basin select on " + s.cluster + ", " + std::to_string(s.ranks) + " ranks over " +
               std::to_string(s.servers) + " servers";
  std::vector<int> nccl;
  for (size_t i = 0; i < s.candidates.size(); ++i)
    if (s.candidates[i].is_nccl()) nccl.push_back(static_cast<int>(i));
  if (nccl.empty())
    throw topo::InputError("--nccl", "", "NCCL's algorithms among the candidates to write NCCL rules");
  for (size_t r = 0; r < s.rows.size(); ++r) {
    const SizeRow& row = s.rows[r];
    int best = nccl.front();
    for (int i : nccl)
      if (row.time_s[i] < row.time_s[best]) best = i;
    const Choice& c = s.candidates[best];
    tuner::Rule rule;
    rule.collective = tuner::Collective::allreduce;
    rule.algorithm = c.algorithm == sim::Algorithm::tree   ? tuner::Algorithm::tree
                     : c.algorithm == sim::Algorithm::nvls ? tuner::Algorithm::nvls
                     : c.algorithm == sim::Algorithm::nvls_tree ? tuner::Algorithm::nvls_tree
                     : c.algorithm == sim::Algorithm::collnet_chain ? tuner::Algorithm::collnet_chain
                                                           : tuner::Algorithm::ring;
    rule.protocol = c.protocol == Protocol::ll      ? tuner::Protocol::ll
                    : c.protocol == Protocol::ll128 ? tuner::Protocol::ll128
                                                    : tuner::Protocol::simple;
    rule.min_nodes = rule.max_nodes = s.servers;
    rule.min_ranks = rule.max_ranks = s.ranks;
    const auto bytes = static_cast<std::uint64_t>(row.bytes);
    if (!out.rules.empty() && out.rules.back().algorithm == rule.algorithm &&
        out.rules.back().protocol == rule.protocol) {
      out.rules.back().max_bytes = bytes;
    } else {
      // Row r decides the sizes above row r-1's. The ladder's first row decides those below it
      // only when it was asked to start at nccl-tests' smallest size; a narrower ladder says
      // nothing there and leaves those sizes to NCCL's own tuner.
      const auto first = static_cast<std::uint64_t>(s.rows.front().bytes);
      rule.min_bytes = !out.rules.empty() ? out.rules.back().max_bytes + 1 : s.min_bytes <= 8 ? 0 : first / 2 + 1;
      rule.max_bytes = bytes;
      out.rules.push_back(rule);
    }
  }
  // Likewise above the ladder's last size: to the end only when asked to reach nccl-tests'
  // largest, 8 GiB (a ladder from 3 GB doubles to 6 GB and stops short of it).
  if (!out.rules.empty() && s.max_bytes >= 8.0 * (1ull << 30)) out.rules.back().max_bytes = UINT64_MAX;
  return out;
}

}  // namespace basin::plan
