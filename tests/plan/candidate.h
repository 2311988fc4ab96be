// The position of a named choice among a selection's candidates, for the tests that read one
// candidate's time out of `basin select`'s rows (-1 when the selection does not have it), and the
// selection those tests read.
#pragma once

#include <basin/plan.h>

#include <string>

namespace basin::test {

inline int candidate(const plan::Selection& s, const std::string& name) {
  for (size_t i = 0; i < s.candidates.size(); ++i)
    if (s.candidates[i].name() == name) return static_cast<int>(i);
  return -1;
}

// `basin select --nccl` on a cluster spec, from min_bytes up to 8 GB.
inline plan::Selection nccl_selection(const char* cluster, double min_bytes = 8.0 * (1ull << 30)) {
  plan::SelectOptions o;
  o.nccl = true;
  o.min_bytes = min_bytes;
  o.max_bytes = 8.0 * (1ull << 30);
  return plan::select_allreduce(topo::load_any(cluster), o);
}

}  // namespace basin::test
