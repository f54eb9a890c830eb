// The MNIST example's CUDA kernels (feature `cuda`): compiled to PTX by the package's build.rs
// and launched from examples/mnist/gpu.rs.
//
// mnist_adam_f32 is the fused Adam update of train.rs (`adam_generic`) on the GPU: one pass over
// a variable instead of candle's dozen tensor ops per variable. Every operation is written with
// the round-to-nearest intrinsics, in the CPU code's order, so that nvcc contracts nothing into
// an FMA: given the same gradients, the GPU update is the CPU update bit for bit.

#include <stddef.h>

#define MNIST_BLOCK 256

extern "C" __global__ void mnist_adam_f32(const size_t n, float *__restrict__ theta,
                                          const float *__restrict__ g, float *__restrict__ m,
                                          float *__restrict__ v, const float b1, const float b2,
                                          const float scale_m, const float scale_v,
                                          const float lr, const float eps) {
  const float one_minus_b1 = __fsub_rn(1.0f, b1);
  const float one_minus_b2 = __fsub_rn(1.0f, b2);
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)blockDim.x * gridDim.x) {
    const float gi = g[i];
    // m = b1 m + (1 - b1) g
    const float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(one_minus_b1, gi));
    // v = b2 v + ((1 - b2) g) g
    const float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(one_minus_b2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    // theta -= lr (m scale_m) / (sqrt(v scale_v) + eps)
    const float step = __fdiv_rn(__fmul_rn(lr, __fmul_rn(mi, scale_m)),
                                 __fadd_rn(__fsqrt_rn(__fmul_rn(vi, scale_v)), eps));
    theta[i] = __fsub_rn(theta[i], step);
  }
}
