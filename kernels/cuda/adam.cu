// Adam / AdamW step kernel (see adam.h). The scalar coefficients are computed on the host in double
// and rounded to float exactly as cpu_adam_step does; products are written with __fmul_rn /
// __fadd_rn where the CPU (no FMA contraction at -O2 x86-64) rounds after each operation, so the
// two backends agree to the last bit unless the CPU build contracts (MIRA_NATIVE on an FMA machine).
#include "kernels/cuda/adam.h"
#include "kernels/cuda/device_util.cuh"

namespace mira {

using namespace cuda_detail;

namespace {

struct AdamCoef {
  float step_size, bc2_sqrt, decay, wd, one_minus_b1, b2, one_minus_b2, eps;
  bool decoupled, has_wd;
};

__global__ void k_adam(float* param, const float* grad, float* m, float* v, int64_t n, AdamCoef k) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float g = grad[i];
    float p = param[i];
    if (k.decoupled) {
      p = __fmul_rn(p, k.decay);
    } else if (k.has_wd) {
      g = __fadd_rn(g, __fmul_rn(k.wd, p));
    }
    const float mi = __fadd_rn(m[i], __fmul_rn(__fsub_rn(g, m[i]), k.one_minus_b1));  // exp_avg.lerp_(g, 1-b1)
    const float vi = __fadd_rn(__fmul_rn(v[i], k.b2), __fmul_rn(__fmul_rn(k.one_minus_b2, g), g));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), k.bc2_sqrt), k.eps);
    p = __fsub_rn(p, __fdiv_rn(__fmul_rn(k.step_size, mi), denom));
    m[i] = mi;
    v[i] = vi;
    param[i] = p;
  }
}

}  // namespace

CudaStatus cuda_adam_step(cudaStream_t s, float* param, const float* grad, float* m, float* v, int64_t n, double lr,
                          double beta1, double beta2, double eps, double weight_decay, bool decoupled, double bc1,
                          double bc2) {
  AdamCoef k;
  k.step_size = (float)(lr / bc1);
  k.bc2_sqrt = (float)std::sqrt(bc2);
  k.decay = (float)(1.0 - lr * weight_decay);
  k.wd = (float)weight_decay;
  k.one_minus_b1 = (float)(1.0 - beta1);
  k.b2 = (float)beta2;
  k.one_minus_b2 = (float)(1.0 - beta2);
  k.eps = (float)eps;
  k.decoupled = decoupled;
  k.has_wd = weight_decay != 0.0;
  const unsigned grid = (unsigned)std::min<int64_t>(grid_for(n), 132 * 16);  // grid-stride, H100-sized cap
  k_adam<<<grid, BLOCK, 0, s>>>(param, grad, m, v, n, k);
  return cuda_status_launch("adam_step kernel");
}

}  // namespace mira
