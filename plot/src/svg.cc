// Line charts written as SVG text: fitted ranges, 1-2-5 or power-of-two ticks, a light grid,
// one polyline (and/or markers) per series and a legend. See plot.h.
#include <basin/plot.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace basin::plot {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
constexpr int kLeft = 72, kRight = 24, kTop = 44, kBottom = 56;

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string number(double v) {
  if (std::abs(v) < 1e-12) v = 0;  // no "-0" or "1e-17" from accumulated steps
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// A tick's label: the number, or on a bytes axis the size in binary units (nccl-tests' sizes).
std::string tick_label(const Axis& axis, double v) {
  if (!axis.bytes) return number(v);
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::abs(v) >= 1024 && u < 4) v /= 1024, ++u;
  return number(v) + " " + units[u];
}

void check(const Chart& chart) {
  if (chart.series.empty()) throw PlotError("chart '" + chart.title + "': no series to plot");
  bool any = false;
  for (const Series& s : chart.series) {
    const std::string where = "chart '" + chart.title + "', series '" + s.label + "': ";
    if (s.x.size() != s.y.size())
      throw PlotError(where + std::to_string(s.x.size()) + " x values but " +
                      std::to_string(s.y.size()) + " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]))
        throw PlotError(where + "point " + std::to_string(i) + " is not finite");
      if (chart.x.log2 && !(s.x[i] > 0))
        throw PlotError(where + "x must be > 0 on a log axis, got " + number(s.x[i]));
      if (chart.y.log2 && !(s.y[i] > 0))
        throw PlotError(where + "y must be > 0 on a log axis, got " + number(s.y[i]));
    }
    any = any || !s.x.empty();
  }
  if (!any) throw PlotError("chart '" + chart.title + "': every series is empty");
}

// An axis after fitting: its range in plotted units (log2 of the value on a log axis) and ticks.
struct Scale {
  bool log2 = false;
  double lo = 0, hi = 1;
  std::vector<double> ticks;  // values, not plotted units
  double unit(double v) const { return log2 ? std::log2(v) : v; }
  double fraction(double v) const { return (unit(v) - lo) / (hi - lo); }
};

Scale fit(const Axis& axis, const std::vector<double>& values) {
  double lo = *std::min_element(values.begin(), values.end());
  double hi = *std::max_element(values.begin(), values.end());
  if (!std::isnan(axis.min)) lo = axis.min;
  if (!std::isnan(axis.max)) hi = axis.max;
  Scale s;
  s.log2 = axis.log2;
  if (axis.log2) {
    const double a = std::floor(std::log2(lo)), b = std::max(a + 1, std::ceil(std::log2(hi)));
    const int every = std::max(1, static_cast<int>(std::ceil((b - a + 1) / 10)));
    for (double e = a; e <= b; e += every) s.ticks.push_back(std::exp2(e));
    s.lo = a, s.hi = b;
    return s;
  }
  if (std::isnan(axis.min) && lo >= 0 && lo <= hi / 2) lo = 0;
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {  // one value: a band around it
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  s.ticks = nice_ticks(lo, hi);
  s.lo = std::isnan(axis.min) ? s.ticks.front() : lo;
  s.hi = std::isnan(axis.max) ? s.ticks.back() : hi;
  std::erase_if(s.ticks, [&](double t) { return t < s.lo - 1e-9 * (s.hi - s.lo) || t > s.hi + 1e-9 * (s.hi - s.lo); });
  return s;
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi))
    throw PlotError("ticks need a finite range with hi > lo, got [" + number(lo) + ", " +
                    number(hi) + "]");
  const double raw = (hi - lo) / std::max(1, target - 1);
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  double step = magnitude * 10;
  for (double m : {1.0, 2.0, 5.0})
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  std::vector<double> ticks;
  const long long first = static_cast<long long>(std::floor(lo / step + 1e-9));
  const long long last = static_cast<long long>(std::ceil(hi / step - 1e-9));
  for (long long i = first; i <= last; ++i) ticks.push_back(static_cast<double>(i) * step);
  return ticks;
}

std::string to_svg(const Chart& chart) {
  check(chart);
  std::vector<double> xs, ys;
  for (const Series& s : chart.series) {
    xs.insert(xs.end(), s.x.begin(), s.x.end());
    ys.insert(ys.end(), s.y.begin(), s.y.end());
  }
  const Scale sx = fit(chart.x, xs), sy = fit(chart.y, ys);
  const double w = chart.width - kLeft - kRight, h = chart.height - kTop - kBottom;
  auto px = [&](double v) { return kLeft + sx.fraction(v) * w; };
  auto py = [&](double v) { return kTop + (1 - sy.fraction(v)) * h; };

  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << chart.width << "\" height=\""
    << chart.height << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << chart.width / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">"
    << escape(chart.title) << "</text>\n";
  for (double t : sx.ticks) {
    const std::string x = number(px(t));
    o << "<line x1=\"" << x << "\" y1=\"" << kTop << "\" x2=\"" << x << "\" y2=\"" << kTop + h
      << "\" stroke=\"#e5e5e5\"/>\n<text x=\"" << x << "\" y=\"" << kTop + h + 18
      << "\" text-anchor=\"middle\">" << tick_label(chart.x, t) << "</text>\n";
  }
  for (double t : sy.ticks) {
    const std::string y = number(py(t));
    o << "<line x1=\"" << kLeft << "\" y1=\"" << y << "\" x2=\"" << kLeft + w << "\" y2=\"" << y
      << "\" stroke=\"#e5e5e5\"/>\n<text x=\"" << kLeft - 8 << "\" y=\"" << y
      << "\" text-anchor=\"end\" dominant-baseline=\"middle\">" << tick_label(chart.y, t)
      << "</text>\n";
  }
  o << "<rect x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\"" << w << "\" height=\"" << h
    << "\" fill=\"none\" stroke=\"#333\"/>\n"
    << "<text x=\"" << kLeft + w / 2 << "\" y=\"" << chart.height - 14
    << "\" text-anchor=\"middle\">" << escape(chart.x.label) << "</text>\n"
    << "<text transform=\"translate(18 " << kTop + h / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
    << escape(chart.y.label) << "</text>\n";

  // The legend goes in the corner of the plot area that covers the fewest data points.
  const double legend_w = 180, legend_h = 18.0 * static_cast<double>(chart.series.size()) + 10;
  double legend_x = kLeft + w - legend_w, legend_y = kTop;
  int fewest = -1;
  for (double cx : {kLeft + w - legend_w, static_cast<double>(kLeft)})
    for (double cy : {static_cast<double>(kTop), kTop + h - legend_h}) {
      int covered = 0;
      for (const Series& s : chart.series)
        for (size_t i = 0; i < s.x.size(); ++i) {
          const double x = px(s.x[i]), y = py(s.y[i]);
          covered += x >= cx && x <= cx + legend_w && y >= cy && y <= cy + legend_h;
        }
      if (fewest < 0 || covered < fewest) fewest = covered, legend_x = cx, legend_y = cy;
    }

  for (size_t k = 0; k < chart.series.size(); ++k) {
    const Series& s = chart.series[k];
    const char* color = kColors[k % std::size(kColors)];
    o << "<g class=\"series\" data-label=\"" << escape(s.label) << "\">\n";
    if (s.style != Series::Style::points && s.x.size() > 1) {
      o << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
      for (size_t i = 0; i < s.x.size(); ++i)
        o << (i ? " " : "") << number(px(s.x[i])) << "," << number(py(s.y[i]));
      o << "\"/>\n";
    }
    if (s.style != Series::Style::line || s.x.size() == 1)
      for (size_t i = 0; i < s.x.size(); ++i)
        o << "<circle cx=\"" << number(px(s.x[i])) << "\" cy=\"" << number(py(s.y[i]))
          << "\" r=\"4\" fill=\"" << color << "\"/>\n";
    const double ly = legend_y + 14 + 18 * static_cast<double>(k), lx = legend_x + 10;
    if (s.style == Series::Style::points)
      o << "<circle cx=\"" << lx + 11 << "\" cy=\"" << ly << "\" r=\"4\" fill=\"" << color << "\"/>\n";
    else
      o << "<line x1=\"" << lx << "\" y1=\"" << ly << "\" x2=\"" << lx + 22 << "\" y2=\"" << ly
        << "\" stroke=\"" << color << "\" stroke-width=\"3\"/>\n";
    o << "<text x=\"" << lx + 28 << "\" y=\"" << ly << "\" dominant-baseline=\"middle\">"
      << escape(s.label) << "</text>\n</g>\n";
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace basin::plot
