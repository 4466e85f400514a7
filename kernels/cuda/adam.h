// One Adam / AdamW step on the device, element-wise, exactly the formula of cpu_adam_step
// (kernels/cpu/elementwise.h: torch.optim single-tensor path). Fuses the weight decay, both moment
// updates and the parameter update into one pass (4 reads, 3 writes per element).
#pragma once
#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

CudaStatus cuda_adam_step(cudaStream_t s, float* param, const float* grad, float* m, float* v, int64_t n, double lr,
                          double beta1, double beta2, double eps, double weight_decay, bool decoupled, double bc1,
                          double bc2);

}  // namespace mira
