// What the data layer's sources share beyond the public header: decoding into a caller-owned
// image so a worker thread reuses one buffer for every sample.
#pragma once

#include <basin/data.h>

namespace basin::data {

void decode_into(std::span<const std::uint8_t> jpeg, int eighths, bool fast, Image& out);

}  // namespace basin::data
