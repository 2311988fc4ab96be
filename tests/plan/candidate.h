// The position of a named choice among a selection's candidates, for the tests that read one
// candidate's time out of `basin select`'s rows; -1 when the selection does not have it.
#pragma once

#include <basin/plan.h>

#include <string>

namespace basin::test {

inline int candidate(const plan::Selection& s, const std::string& name) {
  for (size_t i = 0; i < s.candidates.size(); ++i)
    if (s.candidates[i].name() == name) return static_cast<int>(i);
  return -1;
}

}  // namespace basin::test
