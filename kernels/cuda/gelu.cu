// GELU forward/backward kernels (see gelu.h).
#include <cstdint>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/gelu.h"

namespace mira {

using namespace cuda_detail;

namespace {

constexpr float GELU_K = (float)0.7978845608028654;        // sqrt(2 / pi), as (T)GELU_K on the CPU
constexpr float GELU_C = (float)0.044715;                  // cubic coefficient
constexpr float GELU_3C = (float)(3 * 0.044715);           // (T)(3 * GELU_C) on the CPU

__device__ inline float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ inline float add(float a, float b) { return __fadd_rn(a, b); }
__device__ inline float sub(float a, float b) { return __fsub_rn(a, b); }

// kernels/cpu/gelu.cpp tanh_f32, same operations in the same order (see the comment there).
__device__ inline float tanh_f32(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float z = mul(2.0f, ax < 10.0f ? ax : 10.0f);
  const int32_t k = (int32_t)add(mul(z, 1.44269504089f), 0.5f);  // C++ float->int conversion truncates
  const float kf = (float)k;
  const float r = add(sub(z, mul(kf, 0.693359375f)), mul(kf, 2.12194440e-4f));
  float p = 1.0f / 720.0f;
  p = add(mul(p, r), 1.0f / 120.0f);
  p = add(mul(p, r), 1.0f / 24.0f);
  p = add(mul(p, r), 1.0f / 6.0f);
  p = add(mul(p, r), 0.5f);
  p = add(mul(p, r), 1.0f);
  p = add(mul(p, r), 1.0f);
  const float e = mul(p, __int_as_float((k + 127) << 23));
  const float big = sub(1.0f, __fdiv_rn(2.0f, add(e, 1.0f)));
  const float x2 = mul(ax, ax);
  const float small =
      mul(ax, add(1.0f, mul(x2, add(-1.0f / 3.0f, mul(x2, add(2.0f / 15.0f, mul(x2, -17.0f / 315.0f)))))));
  const float t = ax < 0.25f ? small : (ax > 9.02f ? 1.0f : big);
  return x < 0.0f ? -t : t;
}

__device__ inline float gelu_inner(float v) {  // K * (v + C*v*v*v)
  return mul(GELU_K, add(v, mul(mul(mul(GELU_C, v), v), v)));
}

__device__ inline float gelu_fwd(float v) { return mul(mul(0.5f, v), add(1.0f, tanh_f32(gelu_inner(v)))); }

__device__ inline float gelu_bwd(float dy, float v) {
  const float th = tanh_f32(gelu_inner(v));
  const float sech2 = sub(1.0f, mul(th, th));
  const float g = add(mul(0.5f, add(1.0f, th)),
                      mul(mul(mul(mul(0.5f, v), sech2), GELU_K), add(1.0f, mul(mul(GELU_3C, v), v))));
  return mul(dy, g);
}

// Grid-stride over groups of 4 elements: float4 loads and stores when every pointer is 16-byte
// aligned (vec; the group count is then n / 4 and the tail is done element by element), else 4
// scalar elements per step. Four independent tanh per thread hide the latency of the division;
// the per-element operations are unchanged (bitwise equal to the CPU).
// Element access for fp32 and bf16 storage (bf16 activations, Backend DAct): groups of 4 as one
// 16-byte (fp32) or 8-byte (bf16) access; a bf16 store rounds to nearest even.
struct alignas(8) Bf16x4 {
  __nv_bfloat16 h[4];
};
__device__ inline float load1(const float* p) { return *p; }
__device__ inline float load1(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ inline void store1(float* p, float v) { *p = v; }
__device__ inline void store1(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ inline void load4(const float* p, int64_t g, float* v) {
  const float4 t = reinterpret_cast<const float4*>(p)[g];
  v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
}
__device__ inline void load4(const __nv_bfloat16* p, int64_t g, float* v) {
  const Bf16x4 t = reinterpret_cast<const Bf16x4*>(p)[g];
  for (int k = 0; k < 4; ++k) v[k] = __bfloat162float(t.h[k]);
}
__device__ inline void store4(float* p, int64_t g, const float* v) {
  reinterpret_cast<float4*>(p)[g] = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ inline void store4(__nv_bfloat16* p, int64_t g, const float* v) {
  Bf16x4 t;
  for (int k = 0; k < 4; ++k) t.h[k] = __float2bfloat16_rn(v[k]);
  reinterpret_cast<Bf16x4*>(p)[g] = t;
}
template <typename T>
bool aligned_group(const T* p) {  // a group of 4 elements is one aligned access
  return reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) == 0;
}

template <typename TY, typename TX>
__global__ void k_gelu_forward(TY* y, const TX* x, int64_t n, bool vec) {
  const int64_t groups = vec ? n / 4 : (n + 3) / 4;
  for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
    if (vec) {
      float v[4];
      load4(x, g, v);
      for (int k = 0; k < 4; ++k) v[k] = gelu_fwd(v[k]);
      store4(y, g, v);
    } else {
      for (int64_t i = 4 * g; i < 4 * g + 4 && i < n; ++i) store1(y + i, gelu_fwd(load1(x + i)));
    }
  }
  if (vec && blockIdx.x == 0 && threadIdx.x < n % 4) {  // the tail after the vector groups
    const int64_t i = n / 4 * 4 + threadIdx.x;
    store1(y + i, gelu_fwd(load1(x + i)));
  }
}

template <typename TX>
__global__ void k_gelu_backward(float* dx, const float* dy, const TX* x, int64_t n, bool vec) {
  const int64_t groups = vec ? n / 4 : (n + 3) / 4;
  for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
    if (vec) {
      float v[4], d[4];
      load4(x, g, v);
      load4(dy, g, d);
      for (int k = 0; k < 4; ++k) d[k] = gelu_bwd(d[k], v[k]);
      store4(dx, g, d);
    } else {
      for (int64_t i = 4 * g; i < 4 * g + 4 && i < n; ++i) dx[i] = gelu_bwd(dy[i], load1(x + i));
    }
  }
  if (vec && blockIdx.x == 0 && threadIdx.x < n % 4) {
    const int64_t i = n / 4 * 4 + threadIdx.x;
    dx[i] = gelu_bwd(dy[i], load1(x + i));
  }
}

constexpr int64_t MAX_GRID = 132 * 16;  // grid-stride cap: 16 blocks of 256 per H100 SM

template <typename TY, typename TX>
CudaStatus gelu_forward(cudaStream_t s, TY* y, const TX* x, int64_t n) {
  const bool vec = aligned_group(y) && aligned_group(x);
  k_gelu_forward<TY, TX><<<(unsigned)std::min<int64_t>(grid_for((n + 3) / 4), MAX_GRID), BLOCK, 0, s>>>(y, x, n, vec);
  return cuda_status_launch("gelu_forward kernel");
}

template <typename TX>
CudaStatus gelu_backward(cudaStream_t s, float* dx, const float* dy, const TX* x, int64_t n) {
  const bool vec = aligned_group(dx) && aligned_group(dy) && aligned_group(x);
  k_gelu_backward<TX><<<(unsigned)std::min<int64_t>(grid_for((n + 3) / 4), MAX_GRID), BLOCK, 0, s>>>(dx, dy, x, n,
                                                                                                      vec);
  return cuda_status_launch("gelu_backward kernel");
}

}  // namespace

CudaStatus cuda_gelu_forward(cudaStream_t s, float* y, const float* x, int64_t n) { return gelu_forward(s, y, x, n); }
CudaStatus cuda_gelu_forward(cudaStream_t s, __nv_bfloat16* y, const float* x, int64_t n) {
  return gelu_forward(s, y, x, n);
}
CudaStatus cuda_gelu_forward(cudaStream_t s, float* y, const __nv_bfloat16* x, int64_t n) {
  return gelu_forward(s, y, x, n);
}
CudaStatus cuda_gelu_forward(cudaStream_t s, __nv_bfloat16* y, const __nv_bfloat16* x, int64_t n) {
  return gelu_forward(s, y, x, n);
}
CudaStatus cuda_gelu_backward(cudaStream_t s, float* dx, const float* dy, const float* x, int64_t n) {
  return gelu_backward(s, dx, dy, x, n);
}
CudaStatus cuda_gelu_backward(cudaStream_t s, float* dx, const float* dy, const __nv_bfloat16* x, int64_t n) {
  return gelu_backward(s, dx, dy, x, n);
}

}  // namespace mira
