// The bridge from the data layer's raw batches (data::RawImage: decoded regions, crops, flips)
// to the kernels' input stage (kernels::SourceImage), which the data layer must not know about;
// and the host version of staging a raw batch, which Backend::stage_input's default runs.
#pragma once

#include <basin/backend.h>
#include <basin/kernels.h>

#include <vector>

namespace basin::exec::detail {

// Throws std::invalid_argument naming what is wrong when `raw` is not a raw batch of `dst`'s
// shape (3 channels, the same height and width, at most dst's images, regions inside the bytes).
void check_raw_batch(const data::Batch& raw, const TensorDesc& dst);

std::vector<kernels::SourceImage> source_images(const data::Batch& raw);
kernels::InputNormalization input_normalization(const data::Normalization& n);

// dst.n images of 3 x H x W floats (NCHW): the raw batch's staged, the rest zero.
void stage_on_host(const data::Batch& raw, const data::Normalization& norm, const TensorDesc& dst,
                   float* nchw);

}  // namespace basin::exec::detail
