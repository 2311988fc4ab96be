// One number as printf writes it, for the planner's messages and tables (plan.cc, select.cc).
#pragma once

#include <cstdio>
#include <string>

namespace basin::plan::detail {

inline std::string number_text(const char* spec, double x) {
  char text[64];
  std::snprintf(text, sizeof text, spec, x);
  return text;
}

}  // namespace basin::plan::detail
