// The CUDA backend on a CPU emulator (docs/cuda.md): this header is force-included (-include) into
// every translation unit of the emulated build - the kernels of kernels/cuda after translate.cmake,
// src/backend/backend_cuda.cpp and the GPU tests - before anything else.
//  - The real CUDA headers give the types (cudaStream_t, dim3, __nv_bfloat16 with its host
//    conversions, cublasHandle_t, the enums); nothing of the CUDA runtime or cuBLAS is linked.
//  - Every runtime / cuBLAS function the sources call is renamed (#define cudaMalloc
//    mira_emu_cudaMalloc, ...) to the host shims of emu_runtime.cpp, so the emulated objects can be
//    linked next to the real libcudart_static without clashing, and a call missing from the list
//    below fails to link in a CUDA-off build instead of reaching a real driver.
//  - Device code: threadIdx / blockIdx / blockDim / gridDim, __syncthreads, __syncwarp, the warp
//    shuffles and the intrinsics the kernels use, as plain IEEE host operations (compiled with
//    -ffp-contract=off); the inline PTX of kernels/cuda/mma_bf16.cuh (mma.sync m16n8k16, ldmatrix,
//    cp.async) as warp-collective host functions with the PTX fragment layouts.
// Execution model (emu_runtime.cpp): a launch runs its blocks one after the other; the threads of a
// block are fibers on one OS thread that switch only at __syncthreads and warp-collective ops
// (shuffles, __syncwarp, mma.sync, ldmatrix).
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace emu {

// ---- the running CUDA thread --------------------------------------------------------------------
extern const uint3* g_thread_idx;  // the current fiber's threadIdx
extern uint3 g_block_idx;
extern dim3 g_block_dim, g_grid_dim;

void syncthreads();
// A warp shuffle: the calling lane contributes one 8-byte value and gets lane src's value
// (src = lane ^ arg for kXor, arg for kIdx); all 32 lanes of the warp must call it with a full mask.
enum ShuffleKind { kXor, kIdx };
uint64_t warp_shuffle(unsigned mask, uint64_t bits, ShuffleKind kind, int arg, const char* what);
// A warp-collective exchange (__syncwarp, mma.sync, ldmatrix): the calling lane contributes `bytes` (<= 128)
// from `in`; once all 32 lanes of the warp have arrived (at the same op `what`, else a device trap),
// `all` (32 * bytes, may be null) receives every lane's contribution in lane order.
void warp_exchange(const void* in, size_t bytes, void* all, const char* what);
unsigned lane_id();  // the calling thread's lane (linear thread index % 32)
// Storage of the block's dynamic shared memory (the launch's smem bytes), NaN-filled per block.
void* dynamic_shared_raw();
template <typename T>
T* dynamic_shared() { return static_cast<T*>(dynamic_shared_raw()); }
// A static __shared__ variable: one NaN-filled instance per block, identified by key.
void* static_shared(const void* key, size_t bytes);
[[noreturn]] void device_trap(const char* what);

// ---- launches: kernel % LaunchConfig(...) << launch_args(...) (see translate.cmake) --------------
struct LaunchConfig {
  const char* file;
  int line;
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  LaunchConfig(const char* f, int l, dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr)
      : file(f), line(l), grid(g), block(b), smem(s), stream(st) {}
};
template <typename... P>
struct PendingLaunch {
  void (*kernel)(P...);
  LaunchConfig cfg;
};
template <typename... P>
PendingLaunch<P...> operator%(void (*kernel)(P...), const LaunchConfig& cfg) {
  return PendingLaunch<P...>{kernel, cfg};
}
template <typename... A>
std::tuple<std::decay_t<A>...> launch_args(A&&... a) {
  return std::tuple<std::decay_t<A>...>(std::forward<A>(a)...);
}
// Runs body(ctx) once per thread of every block; launch errors become the sticky last error.
void run_grid(const void* kernel, const LaunchConfig& cfg, void (*body)(void*), void* ctx);
template <typename... P, typename... A>
void operator<<(const PendingLaunch<P...>& l, std::tuple<A...> args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  struct Ctx {
    void (*kernel)(P...);
    std::tuple<A...>* args;
  } ctx{l.kernel, &args};
  // Each thread gets its own copies of the parameters (kernels may modify them).
  run_grid(reinterpret_cast<const void*>(l.kernel), l.cfg,
           [](void* p) {
             Ctx* c = static_cast<Ctx*>(p);
             std::apply(c->kernel, *c->args);
           },
           &ctx);
}

// Sticky-error helpers for the shims.
bool is_device_range(const void* p, size_t bytes);
void record_error(cudaError_t e, const char* what);

}  // namespace emu

// ---- device built-ins -----------------------------------------------------------------------------
#define threadIdx (*::emu::g_thread_idx)
#define blockIdx (static_cast<const uint3&>(::emu::g_block_idx))
#define blockDim (static_cast<const dim3&>(::emu::g_block_dim))
#define gridDim (static_cast<const dim3&>(::emu::g_grid_dim))
#define warpSize 32
#define __syncthreads() ::emu::syncthreads()
#undef __launch_bounds__
#define __launch_bounds__(...)
// One instance per block of `T name dims` (dims: "" or "[N]..."), NaN-filled at block start.
#define EMU_STATIC_SHARED(T, name, dims)                 \
  static const char emu_shared_key_##name = 0;            \
  using emu_shared_type_##name = T dims;                  \
  emu_shared_type_##name& name = *static_cast<emu_shared_type_##name*>( \
      ::emu::static_shared(&emu_shared_key_##name, sizeof(emu_shared_type_##name)))

template <typename T>
inline T emu_shuffle(unsigned mask, T v, ::emu::ShuffleKind kind, int arg, int width, const char* what) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of an unsupported type");
  if (width != 32) ::emu::device_trap("warp shuffle with width != 32 (not emulated)");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = ::emu::warp_shuffle(mask, bits, kind, arg, what);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return emu_shuffle(mask, v, ::emu::kXor, lane_mask, width, "__shfl_xor_sync");
}
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  return emu_shuffle(mask, v, ::emu::kIdx, src_lane, width, "__shfl_sync");
}

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  if (mask != 0xffffffffu) ::emu::device_trap("__syncwarp with a partial mask (not emulated)");
  ::emu::warp_exchange(nullptr, 0, nullptr, "__syncwarp");
}

// ---- mma.sync / ldmatrix / cp.async (the inline PTX of kernels/cuda/mma_bf16.cuh) ----------------
// Same fragment layouts as the PTX ISA (mma_bf16.cuh's top comment); each op is warp-collective
// (a scheduling point) except cp.async, which copies at once (the commit/wait calls are no-ops: a
// kernel that reads a buffer before its wait + __syncthreads is still a bug on a GPU that the
// emulator cannot see; the kernels follow the issue / wait / __syncthreads / compute / __syncthreads
// pattern that makes this safe).
namespace emu {
namespace mma_detail {
inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
// The bf16 in the low / high half of a packed register, as a float (exact).
inline float bf16_lo(uint32_t r) { return bits_to_float(r << 16); }
inline float bf16_hi(uint32_t r) { return bits_to_float(r & 0xFFFF0000u); }
}  // namespace mma_detail

// d (16 x 8, fp32) += A (16 x 16, bf16) B (16 x 8, bf16): each output element is summed as
// d + a_0 b_0 + ... + a_15 b_15 in fp32, in k order (products of two bf16 values are exact in fp32;
// a tensor core's summation order is unspecified).
inline void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  struct Part {
    uint32_t a[4], b[2];
  } mine{{a[0], a[1], a[2], a[3]}, {b0, b1}}, all[32];
  warp_exchange(&mine, sizeof mine, all, "mma.sync.m16n8k16");
  auto A = [&](unsigned r, unsigned k) {  // lane (r % 8) * 4 + (k % 8) / 2, register (r / 8) + 2 (k / 8)
    const uint32_t w = all[(r % 8) * 4 + (k % 8) / 2].a[(r / 8) + 2 * (k / 8)];
    return k % 2 ? mma_detail::bf16_hi(w) : mma_detail::bf16_lo(w);
  };
  auto B = [&](unsigned k, unsigned n) {  // lane n * 4 + (k % 8) / 2, register k / 8
    const uint32_t w = all[n * 4 + (k % 8) / 2].b[k / 8];
    return k % 2 ? mma_detail::bf16_hi(w) : mma_detail::bf16_lo(w);
  };
  const unsigned lane = lane_id(), g = lane / 4, q = lane % 4;
  for (int e = 0; e < 4; ++e) {
    const unsigned r = g + 8 * (e / 2), n = 2 * q + e % 2;
    float acc = d[e];
    for (unsigned k = 0; k < 16; ++k) acc += A(r, k) * B(k, n);
    d[e] = acc;
  }
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane 8m + i addresses row i of matrix m.
inline void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16* row, bool trans) {
  const char* what = trans ? "ldmatrix.x4.trans" : "ldmatrix.x4";
  if (reinterpret_cast<uintptr_t>(row) % 16 != 0)
    device_trap((std::string(what) + ": row address not 16-byte aligned").c_str());
  const __nv_bfloat16* rows[32];
  warp_exchange(&row, sizeof row, rows, what);
  auto bits = [](__nv_bfloat16 v) { return (uint32_t)static_cast<__nv_bfloat16_raw>(v).x; };
  const unsigned lane = lane_id(), g = lane / 4, q = lane % 4;
  for (int m = 0; m < 4; ++m) {
    const __nv_bfloat16* const* mat = rows + 8 * m;
    r[m] = trans ? bits(mat[2 * q][g]) | bits(mat[2 * q + 1][g]) << 16
                 : bits(mat[g][2 * q]) | bits(mat[g][2 * q + 1]) << 16;
  }
}

// cp.async.cg.shared.global (16 bytes): copied at once.
inline void cp_async16(void* dst, const void* src) {
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0 || reinterpret_cast<uintptr_t>(src) % 16 != 0)
    device_trap("cp.async: address not 16-byte aligned");
  std::memcpy(dst, src, 16);
}
}  // namespace emu

// Arithmetic intrinsics: round-to-nearest IEEE operations (this code is compiled with
// -ffp-contract=off, so nothing is fused). Precision differences of the device's transcendental
// functions (expf, logf: 1-2 ulp on the GPU) are NOT emulated: the host libm is used.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
inline int __float_as_int(float f) {
  int i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
// CUDA's integer/float min and max overloads (device code calls them unqualified).
template <typename A, typename B>
inline std::common_type_t<A, B> min(A a, B b) {
  return b < a ? (std::common_type_t<A, B>)b : (std::common_type_t<A, B>)a;
}
template <typename A, typename B>
inline std::common_type_t<A, B> max(A a, B b) {
  return a < b ? (std::common_type_t<A, B>)b : (std::common_type_t<A, B>)a;
}

// ---- the CUDA runtime and cuBLAS, renamed to the host shims (emu_runtime.cpp) ---------------------
#undef cudaMalloc
#define cudaMalloc mira_emu_cudaMalloc
#undef cudaFree
#define cudaFree mira_emu_cudaFree
#undef cudaMemsetAsync
#define cudaMemsetAsync mira_emu_cudaMemsetAsync
#undef cudaMemset
#define cudaMemset mira_emu_cudaMemset
#undef cudaMemcpyAsync
#define cudaMemcpyAsync mira_emu_cudaMemcpyAsync
#undef cudaMemcpy
#define cudaMemcpy mira_emu_cudaMemcpy
#undef cudaStreamCreateWithFlags
#define cudaStreamCreateWithFlags mira_emu_cudaStreamCreateWithFlags
#undef cudaStreamCreate
#define cudaStreamCreate mira_emu_cudaStreamCreate
#undef cudaStreamDestroy
#define cudaStreamDestroy mira_emu_cudaStreamDestroy
#undef cudaStreamSynchronize
#define cudaStreamSynchronize mira_emu_cudaStreamSynchronize
#undef cudaDeviceSynchronize
#define cudaDeviceSynchronize mira_emu_cudaDeviceSynchronize
#undef cudaSetDevice
#define cudaSetDevice mira_emu_cudaSetDevice
#undef cudaGetDevice
#define cudaGetDevice mira_emu_cudaGetDevice
#undef cudaGetLastError
#define cudaGetLastError mira_emu_cudaGetLastError
#undef cudaPeekAtLastError
#define cudaPeekAtLastError mira_emu_cudaPeekAtLastError
#undef cudaGetErrorName
#define cudaGetErrorName mira_emu_cudaGetErrorName
#undef cudaGetErrorString
#define cudaGetErrorString mira_emu_cudaGetErrorString
#undef cudaFuncSetAttribute
#define cudaFuncSetAttribute mira_emu_cudaFuncSetAttribute
#undef cublasCreate
#define cublasCreate mira_emu_cublasCreate
#undef cublasDestroy
#define cublasDestroy mira_emu_cublasDestroy
#undef cublasSetStream
#define cublasSetStream mira_emu_cublasSetStream
#undef cublasSetMathMode
#define cublasSetMathMode mira_emu_cublasSetMathMode
#undef cublasSgemm
#define cublasSgemm mira_emu_cublasSgemm
#undef cublasSgemmStridedBatched
#define cublasSgemmStridedBatched mira_emu_cublasSgemmStridedBatched
#undef cublasGemmEx
#define cublasGemmEx mira_emu_cublasGemmEx
#undef cublasGetStatusString
#define cublasGetStatusString mira_emu_cublasGetStatusString
// cuBLASLt: the subset kernels/cuda/gemm_lt.cu uses.
#define cublasLtCreate mira_emu_cublasLtCreate
#define cublasLtDestroy mira_emu_cublasLtDestroy
#define cublasLtMatmulDescCreate mira_emu_cublasLtMatmulDescCreate
#define cublasLtMatmulDescDestroy mira_emu_cublasLtMatmulDescDestroy
#define cublasLtMatmulDescSetAttribute mira_emu_cublasLtMatmulDescSetAttribute
#define cublasLtMatrixLayoutCreate mira_emu_cublasLtMatrixLayoutCreate
#define cublasLtMatrixLayoutDestroy mira_emu_cublasLtMatrixLayoutDestroy
#define cublasLtMatmulPreferenceCreate mira_emu_cublasLtMatmulPreferenceCreate
#define cublasLtMatmulPreferenceDestroy mira_emu_cublasLtMatmulPreferenceDestroy
#define cublasLtMatmulPreferenceSetAttribute mira_emu_cublasLtMatmulPreferenceSetAttribute
#define cublasLtMatmulAlgoGetHeuristic mira_emu_cublasLtMatmulAlgoGetHeuristic
#define cublasLtMatmul mira_emu_cublasLtMatmul

cudaError_t mira_emu_cudaMalloc(void** p, size_t bytes);
cudaError_t mira_emu_cudaFree(void* p);
cudaError_t mira_emu_cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s = nullptr);
cudaError_t mira_emu_cudaMemset(void* p, int value, size_t bytes);
cudaError_t mira_emu_cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                                     cudaStream_t s = nullptr);
cudaError_t mira_emu_cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t mira_emu_cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t mira_emu_cudaStreamCreate(cudaStream_t* s);
cudaError_t mira_emu_cudaStreamDestroy(cudaStream_t s);
cudaError_t mira_emu_cudaStreamSynchronize(cudaStream_t s);
cudaError_t mira_emu_cudaDeviceSynchronize();
cudaError_t mira_emu_cudaSetDevice(int device);
cudaError_t mira_emu_cudaGetDevice(int* device);
cudaError_t mira_emu_cudaGetLastError();
cudaError_t mira_emu_cudaPeekAtLastError();
const char* mira_emu_cudaGetErrorName(cudaError_t e);
const char* mira_emu_cudaGetErrorString(cudaError_t e);
cudaError_t mira_emu_cudaFuncSetAttributeRaw(const void* kernel, cudaFuncAttribute attr, int value);
template <typename T>
cudaError_t mira_emu_cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attr, int value) {
  return mira_emu_cudaFuncSetAttributeRaw(reinterpret_cast<const void*>(kernel), attr, value);
}
template <typename T>
cudaError_t mira_emu_cudaMalloc(T** p, size_t bytes) {
  return mira_emu_cudaMalloc(reinterpret_cast<void**>(p), bytes);
}

cublasStatus_t mira_emu_cublasCreate(cublasHandle_t* h);
cublasStatus_t mira_emu_cublasDestroy(cublasHandle_t h);
cublasStatus_t mira_emu_cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t mira_emu_cublasSetMathMode(cublasHandle_t h, cublasMath_t mode);
cublasStatus_t mira_emu_cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                    const float* alpha, const float* a, int lda, const float* b, int ldb,
                                    const float* beta, float* c, int ldc);
cublasStatus_t mira_emu_cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                  int n, int k, const float* alpha, const float* a, int lda,
                                                  long long stride_a, const float* b, int ldb, long long stride_b,
                                                  const float* beta, float* c, int ldc, long long stride_c, int count);
cublasStatus_t mira_emu_cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                     const void* alpha, const void* a, cudaDataType a_type, int lda, const void* b,
                                     cudaDataType b_type, int ldb, const void* beta, void* c, cudaDataType c_type,
                                     int ldc, cublasComputeType_t compute, cublasGemmAlgo_t algo);
const char* mira_emu_cublasGetStatusString(cublasStatus_t s);

cublasStatus_t mira_emu_cublasLtCreate(cublasLtHandle_t* h);
cublasStatus_t mira_emu_cublasLtDestroy(cublasLtHandle_t h);
cublasStatus_t mira_emu_cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute,
                                                 cudaDataType_t scale);
cublasStatus_t mira_emu_cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d);
cublasStatus_t mira_emu_cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                                       const void* buf, size_t bytes);
cublasStatus_t mira_emu_cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType type, uint64_t rows,
                                                   uint64_t cols, int64_t ld);
cublasStatus_t mira_emu_cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l);
cublasStatus_t mira_emu_cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p);
cublasStatus_t mira_emu_cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p);
cublasStatus_t mira_emu_cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                             cublasLtMatmulPreferenceAttributes_t attr,
                                                             const void* buf, size_t bytes);
cublasStatus_t mira_emu_cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
                                                       cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                       cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl,
                                                       cublasLtMatmulPreference_t pref, int requested,
                                                       cublasLtMatmulHeuristicResult_t results[], int* found);
cublasStatus_t mira_emu_cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void* alpha, const void* a,
                                       cublasLtMatrixLayout_t al, const void* b, cublasLtMatrixLayout_t bl,
                                       const void* beta, const void* c, cublasLtMatrixLayout_t cl, void* dp,
                                       cublasLtMatrixLayout_t dl, const cublasLtMatmulAlgo_t* algo, void* workspace,
                                       size_t workspace_bytes, cudaStream_t stream);
