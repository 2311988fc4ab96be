// Allreduce algorithms as schedules of transfers between ranks, independent of any hardware.
// Costs on a uniform network (alpha latency per message, beta seconds per byte, gamma seconds
// per reduced byte; Thakur, Rabenseifner & Gropp 2005), which the tests check the engine against:
//   ring               2(p-1) alpha + 2(p-1)/p n beta + (p-1)/p n gamma
//   halving-doubling   2 log2(p) alpha + 2(p-1)/p n beta + (p-1)/p n gamma      (p = 2^k)
//   recursive doubling log2(p) (alpha + n beta + n gamma)                       (p = 2^k)
// For p not a power of two, recursive doubling first folds the extra r = p - 2^floor(log2 p)
// ranks into partners (alpha + n beta + n gamma) and finally sends them the result (alpha + n
// beta); halving-doubling uses Gloo's binary blocks instead, whose hand-overs between blocks
// overlap the larger blocks' own steps (adding (n/b_{k-1}) gamma per hand-over on a uniform
// network, see halving_doubling_allreduce). Tree, bcube and 2D-torus schedules
// are in trees_and_grids.cc.
#include <basin/sim.h>

#include <bit>

namespace basin::sim {
namespace {

int floor_pow2(int p) { return static_cast<int>(std::bit_floor(static_cast<unsigned>(p))); }

// Ranks that take part in the power-of-two core, and the fold/unfold steps around it.
struct Fold {
  std::vector<int> core;  // core index -> rank
  Step before, after;
};

Fold fold_to_power_of_two(int p) {
  Fold f;
  const int extra = p - floor_pow2(p);
  for (int i = 0; i < extra; ++i) {
    // Even rank 2i hands its whole vector to 2i+1, which reduces it and stays in the core.
    f.before.transfers.push_back({2 * i, 2 * i + 1, 1.0, true});
    f.after.transfers.push_back({2 * i + 1, 2 * i, 1.0, false});
    f.core.push_back(2 * i + 1);
  }
  for (int r = 2 * extra; r < p; ++r) f.core.push_back(r);
  return f;
}

Schedule wrap(const std::string& name, int p, const Fold& fold, std::vector<Step> core_steps) {
  Schedule s{name, p, {}};
  if (!fold.before.transfers.empty()) s.steps.push_back(fold.before);
  for (Step& step : core_steps) {
    for (Transfer& t : step.transfers) t.src = fold.core[t.src], t.dst = fold.core[t.dst];
    s.steps.push_back(std::move(step));
  }
  if (!fold.after.transfers.empty()) s.steps.push_back(fold.after);
  return s;
}

}  // namespace

std::vector<std::string> algorithm_names() {
  return {"ring", "halving-doubling", "recursive-doubling", "tree", "bcube", "2d-torus",
          "hierarchical", "nvls", "nvls-tree", "collnet-chain"};
}

const char* to_string(Algorithm a) {
  switch (a) {
    case Algorithm::ring: return "ring";
    case Algorithm::halving_doubling: return "halving-doubling";
    case Algorithm::recursive_doubling: return "recursive-doubling";
    case Algorithm::tree: return "tree";
    case Algorithm::bcube: return "bcube";
    case Algorithm::torus_2d: return "2d-torus";
    case Algorithm::hierarchical: return "hierarchical";
    case Algorithm::nvls: return "nvls";
    case Algorithm::nvls_tree: return "nvls-tree";
    case Algorithm::collnet_chain: return "collnet-chain";
  }
  return "?";
}

Algorithm algorithm_from_string(const std::string& name, const std::string& origin) {
  for (Algorithm a : {Algorithm::ring, Algorithm::halving_doubling, Algorithm::recursive_doubling,
                      Algorithm::tree, Algorithm::bcube, Algorithm::torus_2d,
                      Algorithm::hierarchical, Algorithm::nvls, Algorithm::nvls_tree, Algorithm::collnet_chain})
    if (name == to_string(a)) return a;
  std::string known;
  for (const auto& n : algorithm_names()) known += (known.empty() ? "" : ", ") + n;
  throw topo::InputError(origin, "", "an allreduce algorithm among " + known + ", got '" + name + "'");
}

Schedule ring_allreduce(int p) {
  Schedule s{"ring", p, {}};
  if (p < 2) return s;
  Step reduce_scatter{{}, p - 1}, allgather{{}, p - 1};
  for (int r = 0; r < p; ++r) {
    reduce_scatter.transfers.push_back({r, (r + 1) % p, 1.0 / p, true});
    allgather.transfers.push_back({r, (r + 1) % p, 1.0 / p, false});
  }
  s.steps = {reduce_scatter, allgather};
  return s;
}

Schedule halving_doubling_allreduce(int p) {
  Schedule s{"halving-doubling", p, {}};
  if (p < 2) return s;
  struct Block {
    int offset, size;
  };
  std::vector<Block> blocks;  // p's binary digits, the largest block on the lowest ranks
  for (int size = floor_pow2(p), offset = 0; size >= 1; size /= 2)
    if (p & size) blocks.push_back({offset, size}), offset += size;

  // Reduce-scatter inside every block at once; as in Gloo, the largest pieces go to the nearest
  // ranks (distance 1 first), which keeps the heaviest step inside a server.
  const int steps = std::countr_zero(static_cast<unsigned>(blocks.front().size));
  std::vector<Step> halving(steps), doubling(steps);
  for (int j = 0; j < steps; ++j) {
    const int distance = 1 << j;
    for (const Block& b : blocks)
      for (int r = 0; distance < b.size && r < b.size; ++r)
        halving[j].transfers.push_back({b.offset + r, b.offset + (r ^ distance), 0.5 / distance, true});
    doubling[j] = halving[j];
    for (Transfer& t : doubling[j].transfers) t.reduce = false;
  }
  // Gloo's blocks do not wait for each other (allreduce_halving_doubling.h run()): a block of
  // size b has its 1/b shares after log2(b) steps and at once hands each of them, split in
  // ratio pieces of 1/larger, to the next larger block, which reduces them into the shares it
  // is still halving towards; the larger block's own hand-up (log2(larger) steps in) follows
  // it. So the hand-up of block b rides along with step log2(b) of the larger blocks, and on
  // the way back the larger rank's returned piece rides along with the mirror of that step,
  // just before the smaller block starts its own doubling.
  for (size_t k = 1; k < blocks.size(); ++k) {
    const Block large = blocks[k - 1], small = blocks[k];
    const int ratio = large.size / small.size;
    const int j = std::countr_zero(static_cast<unsigned>(small.size));
    for (int r = 0; r < small.size; ++r)
      for (int i = 0; i < ratio; ++i)
        halving[j].transfers.push_back(
            {small.offset + r, large.offset + r * ratio + i, 1.0 / large.size, true});
    for (int r = 0; r < large.size; ++r)
      doubling[j].transfers.push_back(
          {large.offset + r, small.offset + r / ratio, 1.0 / large.size, false});
  }
  s.steps = halving;
  s.steps.insert(s.steps.end(), doubling.rbegin(), doubling.rend());
  return s;
}

void append_mirrored_allgather(Schedule& s, const std::vector<Step>& reduce_scatter) {
  for (auto it = reduce_scatter.rbegin(); it != reduce_scatter.rend(); ++it) {
    Step step = *it;
    for (Transfer& t : step.transfers) t.reduce = false;
    s.steps.push_back(std::move(step));
  }
}

Schedule recursive_doubling_allreduce(int p) {
  if (p < 2) return {"recursive-doubling", p, {}};
  Fold fold = fold_to_power_of_two(p);
  const int q = static_cast<int>(fold.core.size());
  std::vector<Step> steps;
  for (int distance = 1; distance < q; distance *= 2) {
    Step step;
    for (int r = 0; r < q; ++r) step.transfers.push_back({r, r ^ distance, 1.0, true});
    steps.push_back(step);
  }
  return wrap("recursive-doubling", p, fold, std::move(steps));
}

Schedule allreduce_schedule(Algorithm a, int p) {
  switch (a) {
    case Algorithm::ring: return ring_allreduce(p);
    case Algorithm::halving_doubling: return halving_doubling_allreduce(p);
    case Algorithm::recursive_doubling: return recursive_doubling_allreduce(p);
    case Algorithm::tree: return tree_allreduce(p);
    case Algorithm::bcube: return bcube_allreduce(p);
    case Algorithm::torus_2d: return torus_2d_allreduce(p, torus_2d_default_width(p));
    case Algorithm::hierarchical: break;
    case Algorithm::nvls: throw std::logic_error("the NVSwitch's allreduce has no rank schedule: use nvls_cost");
    case Algorithm::nvls_tree: throw std::logic_error("NVLS-tree has no rank schedule: use nvls_tree_cost");
    case Algorithm::collnet_chain: throw std::logic_error("CollNet's chain has no rank schedule: use collnet_chain_cost");
  }
  throw std::logic_error("hierarchical allreduce has no flat schedule: use hierarchical_cost");
}

}  // namespace basin::sim
