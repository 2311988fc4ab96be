// parse_points (measured_points.h): X:Y pairs for the flags that draw measured points.
#include "measured_points.h"

#include <basin/topology.h>

#include <cmath>
#include <stdexcept>

namespace basin::cli {

std::vector<std::pair<double, double>> parse_points(const std::string& text, const PointsForm& f) {
  std::vector<std::pair<double, double>> points;
  for (size_t start = 0; start <= text.size();) {  // every piece, empty ones too ("1:1,")
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    start = end + 1;
    const size_t colon = item.find(':');
    size_t used_x = 0, used_y = 0;
    double x = 0, y = 0;
    try {
      if (colon == std::string::npos) throw std::invalid_argument("no colon");
      x = std::stod(item.substr(0, colon), &used_x);
      y = std::stod(item.substr(colon + 1), &used_y);
    } catch (const std::exception&) {
      used_x = 0;
    }
    if (used_x == 0 || used_x != colon || used_y != item.size() - colon - 1 || !(x >= f.min_x) ||
        !std::isfinite(x) || !(y > 0) || !std::isfinite(y) || y > f.max_y)
      throw topo::InputError(f.flag, "",
                             f.form + " pairs separated by commas, such as " + f.example + " (" +
                                 f.limits + "), got '" + item + "'");
    points.emplace_back(x, y);
  }
  if (points.empty()) throw topo::InputError(f.flag, "", "at least one " + f.form + " pair, got nothing");
  return points;
}

}  // namespace basin::cli
