// basin plot: line charts as standalone SVG, for results people would rather see than read
// (a scaling curve, a Pareto front, a loss curve).
//
// SVG because every browser and Perfetto's neighbour tabs open it, it diffs as text in reports/,
// and writing it needs no library: the charts here are a few polylines, axes with 1-2-5 ticks
// and a legend. The layer depends on nothing; callers write the string where they like
// (topo::write_file_atomically in the CLI).
#pragma once

#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace basin::plot {

struct Series {
  std::string label;
  std::vector<double> x, y;  // same length; finite (x > 0 on a log axis)
  enum class Style { line, points, line_and_points } style = Style::line;
};

struct Axis {
  std::string label;
  bool log2 = false;  // powers of two get the ticks (GPU counts)
  bool bytes = false;  // tick labels as sizes in binary units: "512 B", "1 KB", "64 MB", "8 GB"
  // The range shown; NaN: fitted to the data (a linear axis starts at 0 when all data >= 0 and
  // 0 is within half the data's span, so bars of speed are not magnified).
  double min = std::numeric_limits<double>::quiet_NaN();
  double max = std::numeric_limits<double>::quiet_NaN();
};

struct Chart {
  std::string title;
  Axis x, y;
  std::vector<Series> series;
  int width = 720, height = 440;  // pixels
};

// Bad chart data: names the series and what is wrong.
struct PlotError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Evenly spaced "nice" tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]
// with about `target` ticks; lo and hi are rounded outwards to a step.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

// The chart as an SVG document. Throws PlotError for an empty chart, series whose x and y differ
// in length, non-finite values, or x <= 0 on a log axis.
std::string to_svg(const Chart& chart);

}  // namespace basin::plot
