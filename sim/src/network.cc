// Flow-level network engine: concurrent transfers routed over the topology's directed links,
// each link's bandwidth shared max-min fairly among the flows crossing it (progressive filling),
// re-shared whenever a flow finishes. This is what makes contention visible: two flows on one
// link each get half, a ring crossing an oversubscribed uplink slows to the uplink's share.
// Links run at the rate GPUs drive them (achievable_share: NVLinks at NCCL's per-link figure), so
// every schedule, NCCL's or basin's, is timed on the same links.
#include <basin/sim.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <unordered_map>

namespace basin::sim {

double pcie_payload_share(int generation) {
  // Every transaction-layer packet carries at most the Max Payload Size of data and, besides it,
  // a 16-byte header (4 DW, 64-bit addresses: PCIe Base Specification, 2.2) and, through Gen5,
  // a 4-byte framing token and a 4-byte LCRC (4.2.2.3; Gen1/2: STP and END symbols, 2-byte
  // sequence number, the same 24 bytes). At 128-byte payloads: 128/152 = 0.842 of line rate,
  // 13.3 GB/s on Gen3 x16, 26.5 on Gen4 and 53.1 on Gen5, where published pinned copies
  // (bandwidthTest, nvbandwidth) measure 12.2-13.2 (P100), 25-26.3 (A100) and 51-57 (H100,
  // H200): docs/decisions.md. Gen6's flits carry their own CRC and FEC, which its line coding
  // counts (link_specs.cc), leaving the header: 128/144, not yet measured.
  constexpr double payload = 128;
  if (generation >= 1 && generation <= 5) return payload / (payload + 24);
  if (generation == 6) return payload / (payload + 16);
  return 1.0;  // an unknown generation: line rate, as nothing says otherwise
}

double achievable_share(const topo::Link& link) {
  if (link.kind == topo::LinkKind::pcie) return pcie_payload_share(link.generation);
  if (link.kind != topo::LinkKind::nvlink) return 1.0;
  static const std::map<int, double> nccl_GBps = {{1, 18.0}, {2, 20.0}, {3, 20.0}, {4, 20.6}, {5, 40.1}};
  const auto it = nccl_GBps.find(link.generation);
  // An NVLink of unknown generation: line rate, as nothing says otherwise.
  return it == nccl_GBps.end() ? 1.0 : it->second / topo::nvlink_GBps_per_link(link.generation);
}

topo::Topology achievable_view(const topo::Topology& topo) {
  topo::Topology view = topo;
  for (auto [e, end] = boost::edges(view.graph); e != end; ++e)
    view.graph[*e].bandwidth_GBps *= achievable_share(view.graph[*e]);
  return view;
}

namespace {
bool all_at_line_rate(const topo::Topology& topo) {
  for (auto [e, end] = boost::edges(topo.graph); e != end; ++e)
    if (achievable_share(topo.graph[*e]) != 1.0) return false;
  return true;
}
}  // namespace

Network::Network(const topo::Topology& topo_in, NetworkParams params)
    : own_view_(params.line_rate || all_at_line_rate(topo_in)
                    ? nullptr
                    : std::make_shared<const topo::Topology>(achievable_view(topo_in))),
      topo_(own_view_ ? own_view_.get() : &topo_in),
      params_(params),
      capacity_Bps_(topo::num_links(topo_in), 0) {
  const topo::Topology& topo = *topo_;
  // Every prediction goes through here: a negative or NaN overhead would make collectives
  // cheaper than free or every time NaN, and the result would still print as if meaningful.
  // At most a second a message: beyond that no network is being described, and the times
  // printed would run to hundreds of digits.
  if (!(params.per_message_overhead_us >= 0 && params.per_message_overhead_us <= 1e6))
    throw topo::InputError("--overhead-us", "", "microseconds from 0 to 1e6 (a second), got " +
                                                    std::to_string(params.per_message_overhead_us));
  if (!std::isfinite(params.reduce_GBps) || params.reduce_GBps < 0)
    throw topo::InputError("reduce_GBps", "", "0 (free) or more GB/s, got " +
                                                  std::to_string(params.reduce_GBps));
  const auto& g = topo.graph;
  for (topo::Edge e : boost::make_iterator_range(boost::edges(g)))
    capacity_Bps_.at(g[e].id) = g[e].bandwidth_GBps * 1e9;
}

double Network::transfer_time_s(const std::vector<std::pair<topo::Vertex, topo::Vertex>>& pairs,
                                const std::vector<double>& bytes) {
  std::vector<const RouteInfo*> routes(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) routes[i] = &route(pairs[i].first, pairs[i].second);
  return solve(routes, bytes);
}

double Network::solve(const std::vector<const RouteInfo*>& routes, const std::vector<double>& bytes) {
  const size_t n = routes.size();
  // Compact link ids to the links these flows use.
  std::unordered_map<int, int> local;
  std::vector<double> capacity;
  std::vector<std::vector<int>> flow_links(n);
  for (size_t i = 0; i < n; ++i)
    for (int id : routes[i]->links) {
      auto [it, added] = local.emplace(id, static_cast<int>(capacity.size()));
      if (added) capacity.push_back(capacity_Bps_[id]);
      flow_links[i].push_back(it->second);
    }
  std::vector<double> remaining(bytes);
  std::vector<bool> done(n, false);
  for (size_t i = 0; i < n; ++i) done[i] = !(remaining[i] > 0);
  std::vector<double> rate(n);
  std::vector<std::vector<int>> link_flows(capacity.size());
  for (size_t i = 0; i < n; ++i)
    for (int l : flow_links[i]) link_flows[l].push_back(static_cast<int>(i));

  double now = 0;
  std::vector<int> bottlenecks;
  while (true) {
    // Progressive filling: repeatedly saturate the link with the smallest fair share.
    std::vector<double> left(capacity);
    std::vector<int> unfrozen(capacity.size(), 0);
    std::vector<bool> frozen(n);
    size_t active = 0;
    for (size_t i = 0; i < n; ++i) {
      frozen[i] = done[i];
      if (!done[i]) {
        ++active;
        for (int l : flow_links[i]) ++unfrozen[l];
      }
    }
    if (active == 0) break;
    size_t to_freeze = active;
    while (to_freeze > 0) {
      // Every link whose fair share equals the smallest is a bottleneck now; freezing their
      // flows together is exact (a link at share s keeps share s as flows at s leave it) and
      // turns the symmetric steps of a collective into one round instead of one per link.
      double share = std::numeric_limits<double>::infinity();
      for (size_t l = 0; l < capacity.size(); ++l)
        if (unfrozen[l] > 0) share = std::min(share, left[l] / unfrozen[l]);
      bottlenecks.clear();
      for (size_t l = 0; l < capacity.size(); ++l)
        if (unfrozen[l] > 0 && left[l] / unfrozen[l] <= share * (1 + 1e-12))
          bottlenecks.push_back(static_cast<int>(l));
      for (int bottleneck : bottlenecks)
        for (int f : link_flows[bottleneck]) {
          if (frozen[f]) continue;
          frozen[f] = true;
          --to_freeze;
          rate[f] = share;
          for (int l : flow_links[f]) {
            left[l] -= share;
            --unfrozen[l];
          }
        }
    }
    // Advance to the next completion.
    double dt = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < n; ++i)
      if (!done[i]) dt = std::min(dt, remaining[i] / rate[i]);
    now += dt;
    for (size_t i = 0; i < n; ++i) {
      if (done[i]) continue;
      remaining[i] -= rate[i] * dt;
      if (remaining[i] <= bytes[i] * 1e-12) done[i] = true;
    }
  }
  return now;
}

CollectiveCost Network::cost(const Schedule& s, const std::vector<topo::Vertex>& gpus) {
  if (static_cast<int>(gpus.size()) != s.ranks)
    throw std::invalid_argument("schedule for " + std::to_string(s.ranks) + " ranks run on " +
                                std::to_string(gpus.size()) + " GPUs");
  std::vector<std::pair<topo::Vertex, topo::Vertex>> all_pairs;
  for (const Step& step : s.steps)
    for (const Transfer& t : step.transfers) {
      if ((t.exit_nic < 0) != (t.entry_nic < 0))
        throw std::invalid_argument("a transfer names both the NIC it leaves by and the one it enters by, or neither");
      if (t.exit_nic < 0) all_pairs.emplace_back(gpus[t.src], gpus[t.dst]);
    }
  find_routes(all_pairs);
  CollectiveCost total;
  for (const Step& step : s.steps) {
    if (step.transfers.empty()) continue;
    std::vector<const RouteInfo*> routes;
    std::vector<double> fractions;
    std::unordered_map<int, double> reduced;  // receiving rank -> fraction reduced this step
    double latency = 0;
    // Messages leaving one server in the same step go through that host's network stack one
    // after another; messages inside a server (NVLink, PCIe peer copies) do not queue there.
    std::unordered_map<int, int> leaving;
    int queued = 1;
    const auto& g = topo_->graph;
    for (const Transfer& t : step.transfers) {
      // Only messages from one server to another queue in a host stack: a fabric switch (-1) has
      // none, and what a NIC sends to a switch that sums is the NIC's own (SHARP), not a message
      // through the host's stack.
      const int from = g[gpus[t.src]].server, to = g[gpus[t.dst]].server;
      if (from >= 0 && to >= 0 && from != to) queued = std::max(queued, ++leaving[from]);
      routes.push_back(t.exit_nic < 0 ? &route(gpus[t.src], gpus[t.dst])
                                      : &route_through(gpus[t.src], gpus[t.dst], t.exit_nic, t.entry_nic));
      fractions.push_back(t.fraction);
      latency = std::max(latency, routes.back()->latency_s);
      if (t.reduce) reduced[t.dst] += t.fraction;
    }
    // Sizes are fractions of a 1-byte message: the makespan is seconds per byte of message.
    double per_byte = solve(routes, fractions);
    if (params_.reduce_GBps > 0) {
      double most = 0;
      for (auto [rank, fraction] : reduced) most = std::max(most, fraction);
      per_byte += most / (params_.reduce_GBps * 1e9);
    }
    for (size_t i = 0; i < routes.size(); ++i)
      for (int id : routes[i]->links)
        total.busy_s_per_byte[id] += step.repeat * fractions[i] / capacity_Bps_[id];
    total.latency_s += step.repeat * step.latency_hops *
                       (latency + queued * params_.per_message_overhead_us * 1e-6);
    total.seconds_per_byte += step.repeat * per_byte;
  }
  return total;
}

// Composes one size class at a time: `small` variants are built separately (staging.cc).
void CollectiveCost::add(const CollectiveCost& phase) {
  if (small || phase.small) throw std::invalid_argument("CollectiveCost::add: one size class at a time, no `small`");
  latency_s += phase.latency_s;
  seconds_per_byte += phase.seconds_per_byte;
  for (auto [id, busy] : phase.busy_s_per_byte) busy_s_per_byte[id] += busy;
  for (const CostTerm& t : phase.terms) {
    auto it = std::find_if(terms.begin(), terms.end(), [&](auto& u) { return u.name == t.name; });
    if (it == terms.end()) {
      terms.push_back(t);
    } else {
      it->latency_s += t.latency_s;
      it->seconds_per_byte += t.seconds_per_byte;
    }
  }
}

CollectiveCost CollectiveCost::without(const std::string& term) const {
  CollectiveCost c = *this;
  auto it = std::find_if(c.terms.begin(), c.terms.end(), [&](auto& u) { return u.name == term; });
  if (it != c.terms.end()) {
    c.latency_s -= it->latency_s;
    c.seconds_per_byte -= it->seconds_per_byte;
    c.terms.erase(it);
  }
  if (small) c.small = std::make_shared<const CollectiveCost>(small->without(term));
  return c;
}

std::vector<std::pair<size_t, double>> fastest_segments(const std::vector<CollectiveCost>& costs) {
  if (costs.empty()) throw std::invalid_argument("fastest_of: no costs");
  // Where any input changes from one line to the next (its `small` chain): between two such
  // sizes every input is one line, and the envelope of lines is walked as below.
  std::vector<double> cuts = {0.0};
  for (const CollectiveCost& c : costs)
    for (const CollectiveCost* piece = &c; piece; piece = piece->small.get()) {
      if (!std::isfinite(piece->latency_s) || !std::isfinite(piece->seconds_per_byte))
        throw std::invalid_argument("fastest_of: finite latencies and seconds per byte");
      if (piece->small) {
        if (!(piece->small_below_bytes > 0) || !std::isfinite(piece->small_below_bytes))
          throw std::invalid_argument("fastest_of: a size class's bound above 0 and finite");
        cuts.push_back(piece->small_below_bytes);
      }
    }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  struct Line {
    size_t input;
    const CollectiveCost* piece;
  };
  auto time_at = [](const Line& l, double bytes) { return l.piece->latency_s + bytes * l.piece->seconds_per_byte; };
  std::vector<std::pair<Line, double>> segments;  // line, from bytes
  for (size_t i = 0; i < cuts.size(); ++i) {
    const double from = cuts[i];
    const double to = i + 1 < cuts.size() ? cuts[i + 1] : std::numeric_limits<double>::infinity();
    std::vector<Line> lines;
    for (size_t k = 0; k < costs.size(); ++k) lines.push_back({k, &costs[k].for_bytes(from)});
    // First the line fastest at `from` (the flatter among equals), then each time the flatter
    // line that crosses the current one soonest, up to `to`.
    Line current = *std::min_element(lines.begin(), lines.end(), [&](const Line& a, const Line& b) {
      const double ta = time_at(a, from), tb = time_at(b, from);
      return ta != tb ? ta < tb : a.piece->seconds_per_byte < b.piece->seconds_per_byte;
    });
    double at = from;
    for (;;) {
      // One segment per input's line: the same input on the same line (it did not change at this
      // cut, or changed to an identical piece) goes on; another input is another segment even on
      // an equal line, since a tuner that picks by one model runs the input it picked.
      const bool same = !segments.empty() && segments.back().first.input == current.input &&
                        segments.back().first.piece->latency_s == current.piece->latency_s &&
                        segments.back().first.piece->seconds_per_byte == current.piece->seconds_per_byte;
      if (!same) segments.push_back({current, at});
      const Line* next = nullptr;
      double soonest = std::numeric_limits<double>::infinity();
      for (const Line& c : lines) {
        if (!(c.piece->seconds_per_byte < current.piece->seconds_per_byte)) continue;
        const double crossing = std::max(at, (c.piece->latency_s - current.piece->latency_s) /
                                                 (current.piece->seconds_per_byte - c.piece->seconds_per_byte));
        if (crossing < soonest ||
            (next && crossing == soonest && c.piece->seconds_per_byte < next->piece->seconds_per_byte)) {
          soonest = crossing;
          next = &c;
        }
      }
      if (!next || !(soonest < to)) break;
      current = *next;
      at = soonest;
    }
  }
  std::vector<std::pair<size_t, double>> out;
  for (const auto& [line, from] : segments) out.push_back({line.input, from});
  return out;
}

CollectiveCost fastest_of(const std::vector<CollectiveCost>& costs) { return fastest_of(costs, costs); }

CollectiveCost fastest_of(const std::vector<CollectiveCost>& rank_by, const std::vector<CollectiveCost>& priced) {
  if (rank_by.size() != priced.size()) throw std::invalid_argument("fastest_of: a price for every ranked cost");
  const auto segments = fastest_segments(rank_by);
  // The last segment serves the largest messages; each one before it is the `small` of the next.
  // A segment whose input and priced piece are the previous one's goes on as that one.
  auto piece = [&](const std::pair<size_t, double>& segment) { return &priced[segment.first].for_bytes(segment.second); };
  auto single = [](const CollectiveCost* c) {
    CollectiveCost one = *c;
    one.small = nullptr;
    one.small_below_bytes = 0;
    return one;
  };
  CollectiveCost out = single(piece(segments.front()));
  const CollectiveCost* last = piece(segments.front());
  for (size_t i = 1; i < segments.size(); ++i) {
    const CollectiveCost* next = piece(segments[i]);
    if (segments[i].first == segments[i - 1].first && next == last) continue;
    CollectiveCost larger = single(next);
    larger.small = std::make_shared<const CollectiveCost>(std::move(out));
    larger.small_below_bytes = segments[i].second;
    out = std::move(larger);
    last = next;
  }
  return out;
}

CollectiveCost named(CollectiveCost c, const std::string& name) {
  c.terms = {{name, c.latency_s, c.seconds_per_byte}};
  return c;
}

std::map<std::string, double> busiest_links(const topo::Topology& topo, const CollectiveCost& cost) {
  std::vector<const char*> kind_of(topo::num_links(topo));
  for (topo::Edge e : boost::make_iterator_range(boost::edges(topo.graph)))
    kind_of[topo.graph[e].id] = topo::to_string(topo.graph[e].kind);
  std::map<std::string, double> busiest;
  for (auto [id, busy] : cost.busy_s_per_byte) {
    double& b = busiest[kind_of[id]];
    b = std::max(b, busy);
  }
  return busiest;
}

std::map<std::string, double> link_utilization(const std::map<std::string, double>& busiest,
                                               const CollectiveCost& cost, double bytes) {
  std::map<std::string, double> out;
  const double duration = cost.time_s(bytes);
  for (const auto& [kind, busy] : busiest)
    out[kind] = duration > 0 ? std::min(1.0, busy * bytes / duration) : 0.0;
  return out;
}

}  // namespace basin::sim
