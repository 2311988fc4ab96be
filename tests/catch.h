// Catch2 v2 (Debian 12) and v3 (elsewhere) behind one include.
#pragma once
#ifdef BASIN_CATCH2_V3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;
// A string matcher by the name each major version gives it.
#include <string>
#ifdef BASIN_CATCH2_V3
inline auto HasText(const std::string& text) { return Catch::Matchers::ContainsSubstring(text); }
#else
inline auto HasText(const std::string& text) { return Catch::Matchers::Contains(text); }
#endif
