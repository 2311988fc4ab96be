// Allreduce schedules beyond the classic three: NCCL's double binary tree, Gloo's bcube and the
// 2D-torus of Mikami et al. 2018. Each is a list of steps between ranks, like collectives.cc;
// the tree is one pipelined step (its chunks stream through every level at once), the others
// are ordinary barrier steps.
//
// Costs on a network where every rank has one full-duplex port of bandwidth 1/beta (a star):
//   tree     2 h alpha + 2 n beta           (h = tree height; inner ranks send n/2 up and n/2 to
//                                            each of two children, and n/2 up the other tree)
//   bcube    2 k alpha + 2 (p-1)/p n beta   (k digits)
//   2d-torus 2 (x-1 + y-1) alpha + 2 (x-1)/x n beta + 2 (y-1)/(x y) n beta
#include <basin/sim.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

namespace basin::sim {

std::vector<int> binary_tree_parents(int p, int which) {
  // Tree 0 in NCCL's layout: a rank's parent clears its lowest set bit and sets the next one up
  // (or only clears it when that would leave the range); rank 0 is the root.
  auto parent0 = [p](int r) {
    if (r == 0) return -1;
    const int bit = r & -r;
    const int up = (r ^ bit) | (bit << 1);
    return up < p ? up : r ^ bit;
  };
  // Tree 1 is tree 0 mirrored (p even) or shifted by one (p odd), so that tree 0's inner ranks
  // (even) are tree 1's leaves.
  auto to_real = [p](int v) { return p % 2 == 0 ? p - 1 - v : (v + 1) % p; };
  auto to_virtual = [p](int r) { return p % 2 == 0 ? p - 1 - r : (r - 1 + p) % p; };
  std::vector<int> parent(p);
  for (int r = 0; r < p; ++r) {
    if (which == 0) {
      parent[r] = parent0(r);
    } else {
      const int up = parent0(to_virtual(r));
      parent[r] = up < 0 ? -1 : to_real(up);
    }
  }
  return parent;
}

Schedule tree_allreduce(int p) {
  Schedule s{"tree", p, {}};
  if (p < 2) return s;
  Step step;
  int height = 0;
  for (int which : {0, 1}) {
    std::vector<int> parent = binary_tree_parents(p, which);
    for (int r = 0; r < p; ++r) {
      if (parent[r] < 0) continue;
      step.transfers.push_back({r, parent[r], 0.5, true});    // reduce up
      step.transfers.push_back({parent[r], r, 0.5, false});   // broadcast down
      int depth = 0;
      for (int v = r; parent[v] >= 0; v = parent[v]) ++depth;
      height = std::max(height, depth);
    }
  }
  step.latency_hops = 2 * height;  // the first chunk climbs to the root and comes back down
  s.steps.push_back(step);
  return s;
}

std::vector<int> bcube_digits(int p, int base) {
  if (base < 2) throw std::invalid_argument("bcube base must be at least 2");
  std::vector<int> primes;
  for (int f = 2, rest = p; rest > 1; ++f)
    while (rest % f == 0) primes.push_back(f), rest /= f;
  std::vector<int> digits;
  int digit = 1;
  for (int f : primes) {
    if (digit * f > base && digit > 1) digits.push_back(digit), digit = 1;
    digit *= f;
  }
  if (digit > 1) digits.push_back(digit);
  return digits;
}

Schedule bcube_allreduce(int p, int base) {
  Schedule s{"bcube", p, {}};
  if (p < 2) return s;
  std::vector<Step> scatter;
  double held = 1;  // fraction of the vector each rank is responsible for
  int stride = 1;
  for (int d : bcube_digits(p, base)) {
    Step step;
    for (int r = 0; r < p; ++r) {
      const int pos = (r / stride) % d;
      for (int k = 1; k < d; ++k)
        step.transfers.push_back({r, r + ((pos + k) % d - pos) * stride, held / d, true});
    }
    scatter.push_back(step);
    held /= d;
    stride *= d;
  }
  s.steps = scatter;
  append_mirrored_allgather(s, scatter);
  return s;
}

int torus_2d_default_width(int p) {
  for (int x = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(p)))); x < p; ++x)
    if (p % x == 0) return x;
  return std::max(p, 1);
}

Schedule torus_2d_allreduce(int p, int x) {
  if (x < 1 || p % x != 0)
    throw std::invalid_argument("2d-torus width " + std::to_string(x) + " does not divide " +
                                std::to_string(p) + " ranks");
  Schedule s{"2d-torus", p, {}};
  if (p < 2) return s;
  const int y = p / x;
  auto ring_step = [&](bool along_row, double fraction, bool reduce, int repeat) {
    Step step{{}, repeat};
    for (int r = 0; r < p; ++r) {
      const int row = r / x, col = r % x;
      const int next = along_row ? row * x + (col + 1) % x : ((row + 1) % y) * x + col;
      step.transfers.push_back({r, next, fraction, reduce});
    }
    if (repeat > 0) s.steps.push_back(step);
  };
  ring_step(true, 1.0 / x, true, x - 1);         // reduce-scatter along the rows
  ring_step(false, 1.0 / p, true, y - 1);        // the 1/x piece reduce-scattered down columns
  ring_step(false, 1.0 / p, false, y - 1);       // and allgathered back
  ring_step(true, 1.0 / x, false, x - 1);        // allgather along the rows
  return s;
}

}  // namespace basin::sim
