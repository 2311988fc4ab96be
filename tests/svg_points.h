// Reads back what basin::plot drew: the pixel vertices of a series' polyline, for the tests of
// the plot layer and of the commands that draw.
#pragma once

#include "catch.h"

#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace basin::test {

// Vertices of the polyline of the series labelled `label` (the first series when empty).
inline std::vector<std::pair<double, double>> series_points(const std::string& svg,
                                                            const std::string& label = "") {
  const size_t at = label.empty() ? 0 : svg.find("data-label=\"" + label + "\"");
  REQUIRE(at != std::string::npos);
  std::smatch m;
  const std::string rest = svg.substr(at);
  REQUIRE(std::regex_search(rest, m, std::regex("points=\"([^\"]*)\"")));
  std::vector<std::pair<double, double>> out;
  std::istringstream in(m[1].str());
  std::string pair;
  while (in >> pair) {
    const size_t comma = pair.find(',');
    out.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
  }
  return out;
}

}  // namespace basin::test
