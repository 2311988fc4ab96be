// CPU reference of the 4-d relayout (basin/kernels.h): every element of a tensor copied from one
// set of strides to another, as raw bytes. The definition the GPU kernel must match bit for bit.
#include <basin/kernels.h>

#include <cstring>
#include <stdexcept>

namespace basin::kernels {

void check_layout(const Layout4d& l, size_t element_bytes) {
  if (element_bytes != 2 && element_bytes != 4)
    throw std::invalid_argument("relayout: elements of 2 or 4 bytes, got " + std::to_string(element_bytes));
  for (int d = 0; d < 4; ++d)
    if (l.dims[d] < 0 || l.src_strides[d] < 0 || l.dst_strides[d] < 0)
      throw std::invalid_argument("relayout: negative dimension or stride at axis " + std::to_string(d));
}

void relayout_cpu(const void* src, void* dst, size_t element_bytes, const Layout4d& l) {
  check_layout(l, element_bytes);
  const auto* from = static_cast<const unsigned char*>(src);
  auto* to = static_cast<unsigned char*>(dst);
  for (long long a = 0; a < l.dims[0]; ++a)
    for (long long b = 0; b < l.dims[1]; ++b)
      for (long long c = 0; c < l.dims[2]; ++c)
        for (long long d = 0; d < l.dims[3]; ++d) {
          const long long s = a * l.src_strides[0] + b * l.src_strides[1] + c * l.src_strides[2] + d * l.src_strides[3];
          const long long t = a * l.dst_strides[0] + b * l.dst_strides[1] + c * l.dst_strides[2] + d * l.dst_strides[3];
          std::memcpy(to + t * element_bytes, from + s * element_bytes, element_bytes);
        }
}

}  // namespace basin::kernels
