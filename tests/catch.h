// Catch2 v2 (Debian 12) and v3 (elsewhere) behind one include.
#pragma once
#ifdef BASIN_CATCH2_V3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;
