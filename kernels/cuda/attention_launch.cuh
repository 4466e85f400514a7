// Host-side launch helpers shared by the two attention kernel families (attention.cu: fp32 flash
// kernels; attention_bf16.cu: the bf16 tensor-core kernels). Included by those .cu files only.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/status.h"

// Returns the CudaStatus of expr from the enclosing function when it is not ok.
#define MIRA_CUDA_TRY(expr)    \
  do {                         \
    CudaStatus st_ = (expr);   \
    if (!st_.ok()) return st_; \
  } while (0)

namespace mira {
namespace cuda_detail {

// Lets a kernel use `bytes` of dynamic shared memory (beyond the 48 KB default).
template <typename K>
CudaStatus allow_smem(K kernel, int bytes, const char* step) {
  CudaStatus s;
  s.cuda = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  s.step = step;
  return s;
}

// The dropout keep scale 1 / (1 - p) (1 without dropout), in float as the CPU computes it.
inline float keep_scale_of(const CudaDropout& d) { return d.p > 0.0f ? 1.0f / (1.0f - d.p) : 1.0f; }

}  // namespace cuda_detail
}  // namespace mira
