// The bf16 base GEMM with a bias epilogue on cuBLASLt (see gemm_lt.h).
#include "kernels/cuda/gemm_lt.h"

#include <cublasLt.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <map>

namespace mira {

namespace {

// The largest power of two (up to 256) dividing every address: cuBLASLt's kernels depend on it.
int alignment_class(std::initializer_list<const void*> ptrs) {
  int a = 256;
  for (const void* p : ptrs)
    while (a > 1 && reinterpret_cast<uintptr_t>(p) % (uintptr_t)a != 0) a /= 2;
  return a;
}

}  // namespace

// One shape's descriptors and algorithm (ok = false: cuBLASLt offered none; remembered, so the
// heuristic is not asked again for that shape).
struct LtPlan {
  bool ok = false;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t w = nullptr, x = nullptr, y = nullptr;  // cuBLASLt's A, B and C = D
  cublasLtMatmulAlgo_t algo{};
};

struct CudaGemmLt {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  // key: m, n, k, ldx, ldw, ldy, alignment class of x, w, y and the bias (the heuristic reads the
  // bias pointer's alignment off the descriptor)
  std::map<std::array<int64_t, 7>, LtPlan> plans;
};

namespace {

void destroy_plan(LtPlan& p) {
  if (p.desc) cublasLtMatmulDescDestroy(p.desc);
  if (p.w) cublasLtMatrixLayoutDestroy(p.w);
  if (p.x) cublasLtMatrixLayoutDestroy(p.x);
  if (p.y) cublasLtMatrixLayoutDestroy(p.y);
  p = LtPlan{};
}

// Descriptors for y^T (n, m) = W^T (n, k) x^T (k, m) in column-major terms (no transposes: the
// row-major buffers are these column-major matrices), the bias epilogue, and the heuristic's best
// algorithm for the given pointers' alignment within the workspace limit.
CudaStatus make_plan(CudaGemmLt& lt, LtPlan& p, int64_t m, int64_t n, int64_t k, int64_t ldx, int64_t ldw, int64_t ldy,
                     const void* x, const void* w, const float* bias, float* y) {
  auto fail = [&](cublasStatus_t rc, const char* step) {
    destroy_plan(p);
    return cuda_status_blas(rc, step);
  };
  cublasStatus_t rc = cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (rc != CUBLAS_STATUS_SUCCESS) return fail(rc, "cublasLtMatmulDescCreate");
  const cublasOperation_t no = CUBLAS_OP_N;
  const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
  const cudaDataType_t bias_type = CUDA_R_32F;
  if ((rc = cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &no, sizeof no)) ||
      (rc = cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &no, sizeof no)) ||
      (rc = cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi)) ||
      (rc = cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type)) ||
      (rc = cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias)))
    return fail(rc, "cublasLtMatmulDescSetAttribute");
  if ((rc = cublasLtMatrixLayoutCreate(&p.w, CUDA_R_16BF, (uint64_t)n, (uint64_t)k, ldw)) ||
      (rc = cublasLtMatrixLayoutCreate(&p.x, CUDA_R_16BF, (uint64_t)k, (uint64_t)m, ldx)) ||
      (rc = cublasLtMatrixLayoutCreate(&p.y, CUDA_R_32F, (uint64_t)n, (uint64_t)m, ldy)))
    return fail(rc, "cublasLtMatrixLayoutCreate");
  cublasLtMatmulPreference_t pref = nullptr;
  if ((rc = cublasLtMatmulPreferenceCreate(&pref))) return fail(rc, "cublasLtMatmulPreferenceCreate");
  const uint64_t ws = lt.workspace_bytes;
  // The alignment the heuristic assumes, stated explicitly (it would otherwise read it off the
  // pointers in the descriptor, and only the bias pointer is there).
  const uint32_t align = (uint32_t)alignment_class({x, w, y});
  int found = 0;
  cublasLtMatmulHeuristicResult_t best{};
  rc = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  if (!rc) rc = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align, 4);
  if (!rc) rc = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align, 4);
  if (!rc) rc = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align, 4);
  if (!rc) rc = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align, 4);
  if (!rc) rc = cublasLtMatmulAlgoGetHeuristic(lt.handle, p.desc, p.w, p.x, p.y, p.y, pref, 1, &best, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  // No algorithm (or a shape the heuristic rejects): not an error, the caller composes instead.
  if (rc == CUBLAS_STATUS_NOT_SUPPORTED || (rc == CUBLAS_STATUS_SUCCESS && found == 0))
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, "cublasLtMatmulAlgoGetHeuristic (no algorithm)");
  if (rc != CUBLAS_STATUS_SUCCESS) return fail(rc, "cublasLtMatmulAlgoGetHeuristic");
  p.algo = best.algo;
  p.ok = true;
  return CudaStatus{};
}

}  // namespace

CudaStatus cuda_gemm_lt_create(CudaGemmLt** out, size_t workspace_bytes) {
  *out = nullptr;
  CudaGemmLt* lt = new CudaGemmLt;
  cublasStatus_t rc = cublasLtCreate(&lt->handle);
  if (rc != CUBLAS_STATUS_SUCCESS) {
    delete lt;
    return cuda_status_blas(rc, "cublasLtCreate");
  }
  if (workspace_bytes > 0) {
    const cudaError_t e = cudaMalloc(&lt->workspace, workspace_bytes);
    if (e != cudaSuccess) {
      cublasLtDestroy(lt->handle);
      delete lt;
      CudaStatus s;
      s.cuda = e;
      s.step = "cuBLASLt workspace (cudaMalloc)";
      return s;
    }
  }
  lt->workspace_bytes = workspace_bytes;
  *out = lt;
  return CudaStatus{};
}

void cuda_gemm_lt_destroy(CudaGemmLt* lt) {
  if (!lt) return;
  for (auto& kv : lt->plans) destroy_plan(kv.second);
  if (lt->workspace) cudaFree(lt->workspace);
  if (lt->handle) cublasLtDestroy(lt->handle);
  delete lt;
}

CudaStatus cuda_gemm_bf16_bias(CudaGemmLt* lt, cudaStream_t stream, int64_t m, int64_t n, int64_t k,
                               const __nv_bfloat16* x, int64_t ldx, const __nv_bfloat16* w, int64_t ldw,
                               const float* bias, float* y, int64_t ldy) {
  if (m == 0 || n == 0) return CudaStatus{};
  const std::array<int64_t, 7> key{m, n, k, ldx, ldw, ldy, alignment_class({x, w, y, bias})};
  auto it = lt->plans.find(key);
  if (it == lt->plans.end()) {
    it = lt->plans.emplace(key, LtPlan{}).first;
    const CudaStatus st = make_plan(*lt, it->second, m, n, k, ldx, ldw, ldy, x, w, bias, y);
    if (!st.ok()) return st;  // the plan stays ok = false: NOT_SUPPORTED from now on
  }
  LtPlan& p = it->second;
  if (!p.ok) return cuda_status_blas(CUBLAS_STATUS_NOT_SUPPORTED, "cuBLASLt bias epilogue (no algorithm)");
  cublasStatus_t rc = cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
  if (rc != CUBLAS_STATUS_SUCCESS) return cuda_status_blas(rc, "cublasLtMatmulDescSetAttribute (bias)");
  const float one = 1.0f, zero = 0.0f;
  return cuda_status_blas(cublasLtMatmul(lt->handle, p.desc, &one, w, p.w, x, p.x, &zero, y, p.y, y, p.y, &p.algo,
                                         lt->workspace, lt->workspace_bytes, stream),
                          "cublasLtMatmul (bf16, bias epilogue)");
}

}  // namespace mira
