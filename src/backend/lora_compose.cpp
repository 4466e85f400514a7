// The composed LoRA ops (lora_compose.h): masked input into scratch, then the backend's gemm.
#include "backend/lora_compose.h"

namespace mira {

DFloat LoraScratch::get(Backend& be, int64_t floats) {
  if (buf_.size() < floats) {
    if (!buf_.empty()) be.release(buf_);
    buf_ = be.alloc_f32(floats);
  }
  return buf_.slice(0, floats);
}

void lora_down_composed(Backend& be, DFloat u, DFloat x, DFloat a, const DropoutMask& mask, int64_t n, int64_t in,
                        int64_t r, LoraScratch& scratch, const ApplyMask& apply) {
  DFloat xin = x;
  if (!mask.bits.empty()) {
    xin = scratch.get(be, n * in);
    apply(xin, x.slice(0, n * in), false);
  }
  be.gemm(false, true, n, r, in, 1.0f, xin, in, a, in, 0.0f, u, r);  // u = dropout(x) A^T
}

void lora_down_grad_composed(Backend& be, DFloat ga, DFloat du, DFloat x, const DropoutMask& mask, int64_t n,
                             int64_t in, int64_t r, LoraScratch& scratch, const ApplyMask& apply) {
  DFloat xin = x;
  if (!mask.bits.empty()) {
    xin = scratch.get(be, n * in);
    apply(xin, x.slice(0, n * in), false);
  }
  be.gemm(true, false, r, in, n, 1.0f, du, r, xin, in, 0.0f, ga, in);  // gA = du^T dropout(x)
}

void lora_input_grad_composed(Backend& be, DFloat dx, DFloat du, DFloat a, const DropoutMask& mask, int64_t n,
                              int64_t in, int64_t r, LoraScratch& scratch, const ApplyMask& apply) {
  if (mask.bits.empty()) {
    be.gemm(false, false, n, in, r, 1.0f, du, r, a, in, 1.0f, dx, in);  // dx += du A
    return;
  }
  DFloat t = scratch.get(be, n * in);
  be.gemm(false, false, n, in, r, 1.0f, du, r, a, in, 0.0f, t, in);  // t = du A
  apply(dx.slice(0, n * in), t, true);                               // dx += dropout(t)
}

}  // namespace mira
