// Backend::lora_down / lora_down_grad / lora_input_grad by their definition (backend.h): the input
// with the dropout mask applied goes into a scratch buffer, then the backend's plain gemm. This is
// the CPU backend's implementation (the oracle) and the CUDA backend's for shapes its fused kernels
// do not take. apply(y, x, accumulate): y (+)= the masked x (the mask's keep flags, scale
// 1 / (1 - p)), the operations of dropout(); scratch: the backend's LoraScratch (used only when the
// mask is set).
#pragma once
#include <cstdint>
#include <functional>

#include "backend/backend.h"

namespace mira {

// y (+)= the masked x: the backend's application of a DropoutMask (dropout()'s operations).
using ApplyMask = std::function<void(DFloat y, DFloat x, bool accumulate)>;

// The composed ops' buffer (the masked input, or du A before its masked accumulation), grown on
// demand and kept: the step loop allocates nothing after its first step. Allocated from the
// backend, which frees it with its other blocks.
class LoraScratch {
 public:
  DFloat get(Backend& be, int64_t floats);

 private:
  DFloat buf_;
};

void lora_down_composed(Backend& be, DFloat u, DFloat x, DFloat a, const DropoutMask& mask, int64_t n, int64_t in,
                        int64_t r, LoraScratch& scratch, const ApplyMask& apply);
void lora_down_grad_composed(Backend& be, DFloat ga, DFloat du, DFloat x, const DropoutMask& mask, int64_t n,
                             int64_t in, int64_t r, LoraScratch& scratch, const ApplyMask& apply);
void lora_input_grad_composed(Backend& be, DFloat dx, DFloat du, DFloat a, const DropoutMask& mask, int64_t n,
                              int64_t in, int64_t r, LoraScratch& scratch, const ApplyMask& apply);

}  // namespace mira
