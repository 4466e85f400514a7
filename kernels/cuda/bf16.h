// bfloat16 conversions on the device for the bf16 frozen-weight mode (Backend::freeze_weights) and
// bf16 activations (Backend DAct):
// round to nearest even (__float2bfloat16_rn), the rule of the CPU oracle's bf16_round
// (kernels/cpu/bf16.h). Launchers on stream s; they never throw (kernels/cuda/status.h).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

// out[i] = bf16(w[i]) and w[i] = float(out[i]) for n elements: the frozen weight's bf16 copy, with
// the fp32 storage rounded in place so every other op reads the same values (backend.h semantics).
CudaStatus cuda_freeze_bf16(cudaStream_t s, float* w, __nv_bfloat16* out, int64_t n);

// A rows x cols block of src (leading dimension ld_src, elements) to dst, dense (leading dimension cols).
CudaStatus cuda_convert_bf16_2d(cudaStream_t s, __nv_bfloat16* dst, const float* src, int64_t rows, int64_t cols,
                                int64_t ld_src);

// dst[i] = float(src[i]) for n elements (exact): bf16 activations read by an fp32 kernel.
CudaStatus cuda_widen_bf16(cudaStream_t s, float* dst, const __nv_bfloat16* src, int64_t n);

}  // namespace mira
