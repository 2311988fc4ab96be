// In-network reduction trees: which fabric switches an InfiniBand SHARP allreduce sums in, and
// along which links. The switches of such a tree add what their children send and pass one
// stream up, so each link of the tree carries a channel's share once each way, however many
// servers lie below it. Its own file because it is the one query about the fabric's switches
// rather than about routes between devices.
#include <basin/topology.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <set>

namespace basin::topo {
namespace {

bool sums(const Graph& g, Vertex v) { return g[v].kind == NodeKind::net_switch && g[v].sharp; }

// Breadth-first from `from` through summing switches only: every other vertex reached is a leaf
// of the search. Distances in links (-1: not reached) and the vertex each was reached from.
struct Search {
  std::vector<int> dist;
  std::vector<Vertex> parent;
};

Search search_down(const Graph& g, Vertex from) {
  const size_t n = boost::num_vertices(g);
  Search s{std::vector<int>(n, -1), std::vector<Vertex>(n, from)};
  std::deque<Vertex> queue{from};
  s.dist[from] = 0;
  while (!queue.empty()) {
    const Vertex v = queue.front();
    queue.pop_front();
    if (v != from && !sums(g, v)) continue;  // devices end the tree
    // The sums flow up the tree, so a child must have a link to its parent (v) as well as v to it.
    for (auto [e, end] = boost::in_edges(v, g); e != end; ++e) {
      const Vertex w = boost::source(*e, g);
      if (s.dist[w] >= 0 || !boost::edge(v, w, g).second) continue;
      s.dist[w] = s.dist[v] + 1;
      s.parent[w] = v;
      queue.push_back(w);
    }
  }
  return s;
}

// The deepest of `devices` below `root`, or -1 when one is not below it.
int depth_of(const Search& s, const std::vector<Vertex>& devices) {
  int depth = 0;
  for (Vertex d : devices) {
    if (s.dist[d] < 0) return -1;
    depth = std::max(depth, s.dist[d]);
  }
  return depth;
}

}  // namespace

std::optional<SharpTree> sharp_tree(const Topology& topo, const std::vector<Vertex>& devices, int which) {
  const Graph& g = topo.graph;
  if (devices.empty()) return std::nullopt;
  // A root r is at least as deep as r is far from the first device, so only switches within the
  // best depth found so far from it need searching: on a fat tree its leaf and the spines, not
  // every leaf of the fabric.
  const Search from_first = search_down(g, devices.front());
  std::vector<Vertex> candidates;
  for (Vertex v : boost::make_iterator_range(boost::vertices(g)))
    if (sums(g, v) && from_first.dist[v] > 0) candidates.push_back(v);
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](Vertex a, Vertex b) { return from_first.dist[a] < from_first.dist[b]; });
  int best = std::numeric_limits<int>::max();
  std::vector<std::pair<Vertex, Search>> roots;  // equally low
  for (Vertex r : candidates) {
    if (from_first.dist[r] > best) break;
    Search s = search_down(g, r);
    const int depth = depth_of(s, devices);
    if (depth < 0 || depth > best) continue;
    if (depth < best) roots.clear();
    best = depth;
    roots.emplace_back(r, std::move(s));
  }
  if (roots.empty()) return std::nullopt;
  const auto& [root, s] = roots[static_cast<size_t>(which) % roots.size()];
  SharpTree tree{root, {}, best};
  std::set<std::pair<Vertex, Vertex>> seen;
  // Devices' own links first, then the links above them level by level.
  std::vector<Vertex> level(devices.begin(), devices.end());
  while (!level.empty()) {
    std::vector<Vertex> next;
    for (Vertex v : level) {
      if (v == root) continue;
      const Vertex up = s.parent[v];
      if (seen.insert({v, up}).second) {
        tree.up.emplace_back(v, up);
        next.push_back(up);
      }
    }
    level = std::move(next);
  }
  return tree;
}

}  // namespace basin::topo
