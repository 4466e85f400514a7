// LayerNorm over the last dimension on the device (kernels/cpu/layernorm.h semantics: biased
// variance, mean and rstd saved). Forward: one warp per row fuses the mean, the variance, the
// normalisation and the affine transform (x read three times from L1/L2, y written once).
// The residual variant also forms x = a + r in the same pass (the block's residual add).
// Backward: one warp per row fuses both row reductions and the dx update (accumulated, +=); the
// parameter gradients (full fine-tuning) are column sums over fixed 256-row blocks (one partial per
// block and column) combined in block order by a second kernel: deterministic for a given shape.
// The row sums use a warp butterfly instead of the CPU's sequential order: results agree to
// float rounding (about 1e-6 relative), not bitwise.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

CudaStatus cuda_layernorm_forward(cudaStream_t s, float* y, float* mean, float* rstd, const float* x, const float* w,
                                  const float* b, int64_t n, int64_t c, double eps);

// sum (N, C) = a + r (round-to-nearest add, as the CPU), then the forward above on sum, in one kernel
// (one warp per row); sum may alias a or r.
CudaStatus cuda_residual_layernorm_forward(cudaStream_t s, float* sum, float* y, float* mean, float* rstd,
                                           const float* a, const float* r, const float* w, const float* b, int64_t n,
                                           int64_t c, double eps);

// The same with y stored in bf16 (bf16 activations, Backend DAct): each y element is the fp32 value
// above rounded to nearest even; mean, rstd and sum stay fp32.
CudaStatus cuda_layernorm_forward(cudaStream_t s, __nv_bfloat16* y, float* mean, float* rstd, const float* x,
                                  const float* w, const float* b, int64_t n, int64_t c, double eps);
CudaStatus cuda_residual_layernorm_forward(cudaStream_t s, float* sum, __nv_bfloat16* y, float* mean, float* rstd,
                                           const float* a, const float* r, const float* w, const float* b, int64_t n,
                                           int64_t c, double eps);

// Scratch floats the backward needs for dw/db (0 when neither is requested).
int64_t cuda_layernorm_backward_scratch(int64_t n, int64_t c);

// dx (N, C) += input gradient; dw, db (C) += parameter gradients when non-null; scratch of
// cuda_layernorm_backward_scratch(n, c) floats (may be null when dw and db are null).
CudaStatus cuda_layernorm_backward(cudaStream_t s, float* dx, float* dw, float* db, const float* dy, const float* x,
                                   const float* w, const float* mean, const float* rstd, int64_t n, int64_t c,
                                   float* scratch);

}  // namespace mira
