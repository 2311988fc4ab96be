// The SVG charts: ticks are 1-2-5 steps covering the data, points land where the linear (or
// log2) map of the plot area puts them, and bad data is refused with the series named.
#include "../catch.h"
#include "../svg_points.h"

#include <basin/plot.h>

#include <cmath>
#include <string>

using namespace basin::plot;

namespace {

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("nice ticks are 1, 2 or 5 times a power of ten and cover the range", "[plot]") {
  struct Case {
    double lo, hi, step;
  };
  // Steps worked by hand: the raw step (hi - lo) / 5 rounded up to the next 1-2-5 value.
  for (Case c : {Case{0, 1, 0.2}, Case{0.23, 0.35, 0.05}, Case{-3, 97, 20}, Case{1000, 36000, 10000},
                 Case{0.9, 1.0, 0.02}}) {
    CAPTURE(c.lo, c.hi);
    const auto t = nice_ticks(c.lo, c.hi);
    REQUIRE(t.size() >= 2);
    REQUIRE(t.front() <= c.lo + 1e-12);
    REQUIRE(t.back() >= c.hi - 1e-12);
    for (size_t i = 1; i < t.size(); ++i) REQUIRE_THAT(t[i] - t[i - 1], WithinRel(c.step, 1e-9));
    REQUIRE(t.front() > c.lo - c.step);  // rounded outwards by less than one step
    REQUIRE(t.back() < c.hi + c.step);
  }
  REQUIRE_THROWS_AS(nice_ticks(1, 1), PlotError);
  REQUIRE_THROWS_AS(nice_ticks(0, INFINITY), PlotError);
}

TEST_CASE("points land where the axes' linear map puts them", "[plot]") {
  // Plot area: x from 72 to width - 24 = 696 px, y from 44 to height - 56 = 384 px (plot.h's
  // margins). x data 0..10 and y data 0..100 fit ticks exactly, so the map is
  // px = 72 + 624 x / 10 and py = 384 - 340 y / 100.
  Chart c{.title = "t", .x = {"x"}, .y = {"y"}, .series = {{"s", {0, 5, 10}, {0, 50, 100}}}};
  const auto pts = basin::test::series_points(to_svg(c));
  REQUIRE(pts.size() == 3);
  const double expect[3][2] = {{72, 384}, {72 + 312, 384 - 170}, {696, 44}};
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    REQUIRE_THAT(pts[i].first, WithinAbs(expect[i][0], 0.01));
    REQUIRE_THAT(pts[i].second, WithinAbs(expect[i][1], 0.01));
  }
}

TEST_CASE("a log2 axis puts powers of two evenly apart", "[plot]") {
  Chart c{.title = "scaling", .x = {"GPUs", true}, .y = {"eff"},
          .series = {{"s", {8, 16, 32, 64}, {1, 0.99, 0.97, 0.95}}}};
  const std::string svg = to_svg(c);
  const auto pts = basin::test::series_points(svg);
  REQUIRE(pts.size() == 4);
  REQUIRE_THAT(pts[0].first, WithinAbs(72, 0.01));
  REQUIRE_THAT(pts[3].first, WithinAbs(696, 0.01));
  REQUIRE_THAT(pts[1].first - pts[0].first, WithinAbs(pts[3].first - pts[2].first, 0.02));
  // One tick label per power of two from 8 to 64.
  for (const char* label : {">8<", ">16<", ">32<", ">64<"}) REQUIRE(count(svg, label) == 1);
}

TEST_CASE("a bytes axis labels its ticks as sizes in binary units", "[plot]") {
  // 8 B to 8 GiB (nccl-tests' ladder): 31 powers of two, labelled every fourth (ceil(31 / 10)).
  std::vector<double> x, y;
  for (double b = 8; b <= 8.0 * (1ull << 30); b *= 2) x.push_back(b), y.push_back(1);
  Chart c{.title = "allreduce", .x = {"message", true, true}, .y = {"busbw"}, .series = {{"s", x, y}}};
  const std::string svg = to_svg(c);
  for (const char* label : {">8 B<", ">128 B<", ">2 KiB<", ">32 KiB<", ">512 KiB<", ">8 MiB<", ">128 MiB<", ">2 GiB<"})
    REQUIRE(count(svg, label) == 1);
  REQUIRE(count(svg, ">1024<") == 0);
  REQUIRE(count(svg, ">2048 B<") == 0);
}

TEST_CASE("every series gets its polyline or markers and a legend entry", "[plot]") {
  Chart c{.title = "a & b", .x = {"x"}, .y = {"y"},
          .series = {{"line", {1, 2, 3}, {1, 4, 9}},
                     {"published <ref>", {2}, {5}, Series::Style::points}}};
  const std::string svg = to_svg(c);
  REQUIRE(svg.rfind("<svg", 0) == 0);
  REQUIRE(svg.find("</svg>") != std::string::npos);
  REQUIRE(count(svg, "<polyline") == 1);
  REQUIRE(count(svg, "<circle") == 2);  // the point and its legend swatch
  REQUIRE(count(svg, "<g class=\"series\"") == 2);
  REQUIRE(svg.find("a &amp; b") != std::string::npos);  // text is escaped
  REQUIRE(svg.find("published &lt;ref&gt;") != std::string::npos);
}

TEST_CASE("bad chart data is refused, naming the series", "[plot]") {
  Chart c{.title = "t", .x = {"x", true}, .y = {"y"}, .series = {{"mine", {0, 1}, {1, 2}}}};
  REQUIRE_THROWS_WITH(to_svg(c), HasText("series 'mine'") &&
                                     HasText("log axis"));
  c.x.log2 = false;
  c.series[0].y = {1};
  REQUIRE_THROWS_WITH(to_svg(c), HasText("2 x values but 1 y values"));
  c.series[0].y = {1, NAN};
  REQUIRE_THROWS_WITH(to_svg(c), HasText("point 1 is not finite"));
  c.series.clear();
  REQUIRE_THROWS_AS(to_svg(c), PlotError);
}
