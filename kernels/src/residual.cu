// GPU residual add + ReLU, forward and backward, and its halves (add, ReLU) alone: one pass
// each over 16-byte packs (detail::map1/map2), fp32 arithmetic and one rounding at the store,
// so the results equal the CPU reference's bit for bit. The output may alias an input.
#include "device_common.cuh"

namespace basin::kernels {
namespace {

// The elementwise operations on stored elements (detail::map1/map2 launch them by 16-byte
// packs); each converts to fp32, computes, and rounds once at the end, as the CPU references.
template <class S>
struct AddReluOp {
  __device__ typename S::T operator()(typename S::T a, typename S::T b) const {
    const float sum = S::value(a) + S::value(b);
    return S::bits(sum < 0.f ? 0.f : sum);  // not fmaxf, which would turn a NaN into 0
  }
};

// The ReLU's mask: dy where the output y was positive.
template <class S>
struct ReluMaskOp {
  __device__ typename S::T operator()(typename S::T y, typename S::T dy) const {
    return S::value(y) > 0.f ? dy : typename S::T(0);
  }
};

template <class S>
struct AddOp {
  __device__ typename S::T operator()(typename S::T a, typename S::T b) const {
    return S::bits(S::value(a) + S::value(b));
  }
};

// Selects rather than rounds, so -0 and NaN pass through as the CPU's copy does.
template <class S>
struct ReluOp {
  __device__ typename S::T operator()(typename S::T x) const {
    return S::value(x) < 0.f ? typename S::T(0) : x;
  }
};

// Runs Op<S> over two inputs (or one) in the storage type of precision p.
template <template <class> class Op>
void launch2(const void* a, const void* b, void* y, size_t n, Precision p, void* stream) {
  if (n == 0) return;
  detail::with_storage(p, [&](auto storage) {
    using S = decltype(storage);
    using T = typename S::T;
    detail::map2(static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(y), n,
                 Op<S>{}, stream);
  });
}

}  // namespace

void add_gpu(const void* a, const void* b, void* y, size_t n, Precision p, void* stream) {
  launch2<AddOp>(a, b, y, n, p, stream);
}

void relu_gpu(const void* x, void* y, size_t n, Precision p, void* stream) {
  if (n == 0) return;
  detail::with_storage(p, [&](auto storage) {
    using S = decltype(storage);
    using T = typename S::T;
    detail::map1(static_cast<const T*>(x), static_cast<T*>(y), n, ReluOp<S>{}, stream);
  });
}

void residual_add_relu_gpu(const void* a, const void* b, void* y, size_t n, Precision p,
                           void* stream) {
  launch2<AddReluOp>(a, b, y, n, p, stream);
}

void residual_add_relu_backward_gpu(const void* y, const void* dy, void* dx, size_t n,
                                    Precision p, void* stream) {
  launch2<ReluMaskOp>(y, dy, dx, n, p, stream);
}

}  // namespace basin::kernels
