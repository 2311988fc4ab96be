// Measured points a user puts beside a predicted curve on the command line ("256:0.9,352:0.87"
// for `basin sim --scaling --measured`, "8589934592:480" for `basin select --measured`), parsed
// by one function so every such flag takes the same form and refuses bad input alike.
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace basin::cli {

struct PointsForm {
  std::string flag;     // "--measured"
  std::string form;     // "GPUS:EFFICIENCY"
  std::string example;  // "256:0.9,352:0.87"
  std::string limits;   // "GPUs >= 1, efficiency > 0"
  double min_x = 0;     // x must be >= min_x; y must be > 0; both finite
  double max_y = HUGE_VAL;  // and y <= max_y (an efficiency is at most 1)
};

// X:Y pairs separated by commas; throws topo::InputError naming the flag, the form and the bad
// piece (an empty piece, as in "1:1,", included).
std::vector<std::pair<double, double>> parse_points(const std::string& text, const PointsForm& form);

}  // namespace basin::cli
