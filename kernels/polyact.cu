// polyact's CUDA kernels: the fused polynomial ops of src/nn on the GPU, with the semantics of
// the CPU kernels in src/nn/kernels.rs (forward p(clamp(x)); backward g * p'(clamp(x)), zero
// outside the clamp interval; coefficient gradients sum_i g_i * clamp(x_i)^k).
//
// Compiled to PTX by build.rs (feature `cuda`) and launched from src/nn/cuda.rs.
// Storage types f32, f64, f16 and bf16; the half types are computed in f32 and rounded once,
// f64 in f64, as on the CPU. Inputs are contiguous (info == NULL, pointer already at the
// tensor's start offset) or strided (info = dims[num_dims] then strides[num_dims]).
// Every kernel expects blockDim.x == POLYACT_BLOCK and loops grid-stride over its elements.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stddef.h>
#include <stdint.h>

#define POLYACT_BLOCK 256
#define POLYACT_WARPS (POLYACT_BLOCK / 32)
// Coefficient gradients handled per launch of the power-sum kernel (its per-thread registers).
#define POLYACT_KCHUNK 32

// The compute type of a storage type.
template <typename T> struct Compute { typedef float type; };
template <> struct Compute<double> { typedef double type; };

__device__ __forceinline__ float to_compute(float v) { return v; }
__device__ __forceinline__ double to_compute(double v) { return v; }
__device__ __forceinline__ float to_compute(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_compute(__nv_bfloat16 v) { return __bfloat162float(v); }

// Round-to-nearest-even back to storage, as the `half` crate does on the CPU.
template <typename T> __device__ __forceinline__ T from_compute(typename Compute<T>::type v);
template <> __device__ __forceinline__ float from_compute<float>(float v) { return v; }
template <> __device__ __forceinline__ double from_compute<double>(double v) { return v; }
template <> __device__ __forceinline__ __half from_compute<__half>(float v) {
  return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_compute<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

__device__ __forceinline__ float fma_c(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double fma_c(double a, double b, double c) { return fma(a, b, c); }

// clamp(v) to [lo, hi]; NaN stays NaN (both comparisons are false).
template <typename C> __device__ __forceinline__ C clamp_c(C v, C lo, C hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// The storage offset of the i-th element in logical (row-major) order.
__device__ __forceinline__ size_t element_offset(size_t i, size_t num_dims, const size_t *info) {
  if (info == NULL) {
    return i;
  }
  const size_t *dims = info;
  const size_t *strides = info + num_dims;
  size_t offset = 0;
  for (size_t d = num_dims; d-- > 0;) {
    offset += (i % dims[d]) * strides[d];
    i /= dims[d];
  }
  return offset;
}

// p(v) by Horner's rule over n coefficients in ascending powers; 0 for n == 0.
// With SCALED, c holds the polynomial and this is p'(v): sum_k (k+1) c[k+1] v^k.
template <bool SCALED, typename C>
__device__ __forceinline__ C horner(const C *__restrict__ c, size_t n, C v) {
  if (SCALED) {
    if (n < 2) {
      return C(0);
    }
    C acc = C(n - 1) * c[n - 1];
    for (size_t k = n - 1; k-- > 1;) {
      acc = fma_c(acc, v, C(k) * c[k]);
    }
    return acc;
  }
  if (n == 0) {
    return C(0);
  }
  C acc = c[n - 1];
  for (size_t k = n - 1; k-- > 0;) {
    acc = fma_c(acc, v, c[k]);
  }
  return acc;
}

// out[i] = p(clamp(x[i])) (no clamp unless `clamp`).
template <typename T>
__device__ void poly_fwd(size_t n, size_t num_dims, const size_t *info, const T *__restrict__ x,
                         const typename Compute<T>::type *__restrict__ coeffs, size_t ncoeffs,
                         int clamp, double lo, double hi, T *__restrict__ out) {
  typedef typename Compute<T>::type C;
  const C clo = C(lo), chi = C(hi);
  const size_t stride = (size_t)blockDim.x * gridDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    C v = to_compute(x[element_offset(i, num_dims, info)]);
    if (clamp) {
      v = clamp_c(v, clo, chi);
    }
    out[i] = from_compute<T>(horner<false>(coeffs, ncoeffs, v));
  }
}

// out[i] = g[i] * p'(clamp(x[i])), 0 where x[i] lies outside [lo, hi] when clamping.
// `coeffs` holds p' (SCALED false) or p itself (SCALED true).
template <bool SCALED, typename T>
__device__ void poly_bwd(size_t n, size_t num_dims, const size_t *info_x, const T *__restrict__ x,
                         const size_t *info_g, const T *__restrict__ g,
                         const typename Compute<T>::type *__restrict__ coeffs, size_t ncoeffs,
                         int clamp, double lo, double hi, T *__restrict__ out) {
  typedef typename Compute<T>::type C;
  const C clo = C(lo), chi = C(hi);
  const size_t stride = (size_t)blockDim.x * gridDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const C xv = to_compute(x[element_offset(i, num_dims, info_x)]);
    const C gv = to_compute(g[element_offset(i, num_dims, info_g)]);
    C r;
    if (clamp) {
      const C d = horner<SCALED>(coeffs, ncoeffs, clamp_c(xv, clo, chi));
      r = (xv < clo || xv > chi) ? C(0) : d * gv;
    } else {
      r = horner<SCALED>(coeffs, ncoeffs, xv) * gv;
    }
    out[i] = from_compute<T>(r);
  }
}

// First pass of the coefficient gradients sum_i g_i * clamp(x_i)^k, for k = k0 .. k0 + kcount
// (kcount <= POLYACT_KCHUNK). Each thread accumulates its elements in the compute type, in
// registers; the block adds its threads' sums in f64 (warp shuffles, then one row per warp in
// shared memory, added in a fixed order) and writes partial[blockIdx.x * kcount + k].
template <typename T>
__device__ void power_sums(size_t n, size_t num_dims, const size_t *info_x,
                           const T *__restrict__ x, const size_t *info_g,
                           const T *__restrict__ g, size_t k0, size_t kcount, int clamp,
                           double lo, double hi, double *__restrict__ partial) {
  typedef typename Compute<T>::type C;
  __shared__ double warp_sums[POLYACT_KCHUNK][POLYACT_WARPS];
  const C clo = C(lo), chi = C(hi);
  C acc[POLYACT_KCHUNK];
#pragma unroll
  for (int k = 0; k < POLYACT_KCHUNK; ++k) {
    acc[k] = C(0);
  }
  const size_t stride = (size_t)blockDim.x * gridDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    C v = to_compute(x[element_offset(i, num_dims, info_x)]);
    if (clamp) {
      v = clamp_c(v, clo, chi);
    }
    C power = to_compute(g[element_offset(i, num_dims, info_g)]);
    for (size_t k = 0; k < k0; ++k) {
      power *= v;
    }
#pragma unroll
    for (int k = 0; k < POLYACT_KCHUNK; ++k) {
      if ((size_t)k < kcount) {
        acc[k] += power;
        power *= v;
      }
    }
  }
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int k = 0; k < POLYACT_KCHUNK; ++k) {
    double s = (double)acc[k];
    for (int offset = 16; offset > 0; offset /= 2) {
      s += __shfl_down_sync(0xffffffffu, s, offset);
    }
    if (lane == 0) {
      warp_sums[k][warp] = s;
    }
  }
  __syncthreads();
  if (threadIdx.x < kcount) {
    double s = 0.0;
    for (int w = 0; w < POLYACT_WARPS; ++w) {
      s += warp_sums[threadIdx.x][w];
    }
    partial[(size_t)blockIdx.x * kcount + threadIdx.x] = s;
  }
}

#define POLYACT_KERNELS(T, NAME)                                                                 \
  extern "C" __global__ void __launch_bounds__(POLYACT_BLOCK)                                   \
      polyact_fwd_##NAME(size_t n, size_t num_dims, const size_t *info, const T *x,             \
                         const Compute<T>::type *coeffs, size_t ncoeffs, int clamp, double lo,   \
                         double hi, T *out) {                                                    \
    poly_fwd<T>(n, num_dims, info, x, coeffs, ncoeffs, clamp, lo, hi, out);                      \
  }                                                                                              \
  extern "C" __global__ void __launch_bounds__(POLYACT_BLOCK)                                   \
      polyact_bwd_##NAME(size_t n, size_t num_dims, const size_t *info_x, const T *x,           \
                         const size_t *info_g, const T *g, const Compute<T>::type *derivative,   \
                         size_t nderivative, int clamp, double lo, double hi, T *out) {          \
    poly_bwd<false, T>(n, num_dims, info_x, x, info_g, g, derivative, nderivative, clamp, lo,    \
                       hi, out);                                                                 \
  }                                                                                              \
  extern "C" __global__ void __launch_bounds__(POLYACT_BLOCK)                                   \
      polyact_bwd_poly_##NAME(size_t n, size_t num_dims, const size_t *info_x, const T *x,      \
                              const size_t *info_g, const T *g, const Compute<T>::type *coeffs,  \
                              size_t ncoeffs, int clamp, double lo, double hi, T *out) {         \
    poly_bwd<true, T>(n, num_dims, info_x, x, info_g, g, coeffs, ncoeffs, clamp, lo, hi, out);   \
  }                                                                                              \
  extern "C" __global__ void __launch_bounds__(POLYACT_BLOCK)                                   \
      polyact_power_sums_##NAME(size_t n, size_t num_dims, const size_t *info_x, const T *x,    \
                                const size_t *info_g, const T *g, size_t k0, size_t kcount,      \
                                int clamp, double lo, double hi, double *partial) {              \
    power_sums<T>(n, num_dims, info_x, x, info_g, g, k0, kcount, clamp, lo, hi, partial);        \
  }

POLYACT_KERNELS(float, f32)
POLYACT_KERNELS(double, f64)
POLYACT_KERNELS(__half, f16)
POLYACT_KERNELS(__nv_bfloat16, bf16)

// Second pass: sums[k0 + k] = sum over blocks b of partial[b * kcount + k], one block per k,
// in a fixed order (deterministic, unlike atomics).
extern "C" __global__ void __launch_bounds__(POLYACT_BLOCK)
    polyact_power_sums_finish(size_t nblocks, size_t kcount, const double *__restrict__ partial,
                              size_t k0, double *__restrict__ sums) {
  __shared__ double warp_sums[POLYACT_WARPS];
  const size_t k = blockIdx.x;
  double s = 0.0;
  for (size_t b = threadIdx.x; b < nblocks; b += blockDim.x) {
    s += partial[b * kcount + k];
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    s += __shfl_down_sync(0xffffffffu, s, offset);
  }
  if (threadIdx.x % 32 == 0) {
    warp_sums[threadIdx.x / 32] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int w = 0; w < POLYACT_WARPS; ++w) {
      total += warp_sums[w];
    }
    sums[k0 + k] = total;
  }
}
