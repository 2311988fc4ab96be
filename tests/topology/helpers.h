// Shared helpers for the topology tests: independent closed-form link rates and matrix parsing.
#pragma once

#include <basin/topology.h>

#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace basin_test {

// PCIe per-direction rate from the specification, independent of link_specs.cc:
// Gen1/2 use 8b/10b coding at 2.5/5 GT/s, Gen3+ 128b/130b at 8/16/32 GT/s.
inline double pcie_rate_GBps(int gen, int lanes) {
  const double gts[] = {0, 2.5, 5, 8, 16, 32};
  const double coding = gen <= 2 ? 8.0 / 10 : 128.0 / 130;
  return gts[gen] * lanes * coding / 8;
}

inline double gbit_to_GBps(double gbit) { return gbit / 8; }

// Parses `nvidia-smi topo -m` style text into (row, column) -> code; columns named by the header.
using Matrix = std::map<std::pair<std::string, std::string>, std::string>;
inline Matrix parse_matrix(const std::string& text) {
  Matrix m;
  std::istringstream in(text);
  std::string line;
  std::vector<std::string> columns;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string s; words >> s;) w.push_back(s);
    if (w.empty() || w[0] == "Legend:") {
      if (!columns.empty()) break;
      continue;
    }
    if (columns.empty()) {
      columns = w;  // header: GPU0 ... mlx5_3 [NUMA Affinity | CPU Affinity]
      continue;
    }
    for (size_t i = 0; i + 1 < w.size() && i < columns.size(); ++i) {
      if (columns[i] == "NUMA" || columns[i] == "CPU") break;
      m[{w[0], columns[i]}] = w[i + 1];
    }
  }
  return m;
}

inline basin::topo::Vertex at(const basin::topo::Topology& t, const std::string& id) {
  auto v = basin::topo::find_node(t, id);
  if (!v) throw std::runtime_error("test: no node " + id);
  return *v;
}

}  // namespace basin_test
