// TimedBackend (backend/backend_timed.h): every call forwarded to the inner backend, wall time per op.
#include "backend/backend_timed.h"

#include <algorithm>

namespace mira {

TimedBackend::Clock::time_point TimedBackend::start() {
  if (fence_) fence_();
  return Clock::now();
}

void TimedBackend::add_time(const char* op, Clock::time_point t0) {
  if (fence_) fence_();
  OpTime& o = totals_[op];
  o.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  o.calls += 1;
}

// Wraps one forwarded call: time it and book it under `op`.
#define MIRA_TIMED(op, call)          \
  do {                                \
    const auto t0_ = start();         \
    call;                             \
    add_time(op, t0_);                \
  } while (0)

DFloat TimedBackend::alloc_f32(int64_t n) {
  DFloat r;
  MIRA_TIMED("alloc", r = inner_->alloc_f32(n));
  return r;
}
DInt TimedBackend::alloc_i32(int64_t n) {
  DInt r;
  MIRA_TIMED("alloc", r = inner_->alloc_i32(n));
  return r;
}
DBf16 TimedBackend::alloc_bf16(int64_t n) {
  DBf16 r;
  MIRA_TIMED("alloc", r = inner_->alloc_bf16(n));
  return r;
}
void TimedBackend::release(DFloat s) { MIRA_TIMED("release", inner_->release(s)); }
void TimedBackend::release(DBf16 s) { MIRA_TIMED("release", inner_->release(s)); }
void TimedBackend::upload(DBf16 dst, const uint16_t* host) { MIRA_TIMED("upload", inner_->upload(dst, host)); }
void TimedBackend::download(uint16_t* host, DBf16 src) { MIRA_TIMED("download", inner_->download(host, src)); }
void TimedBackend::release(DInt s) { MIRA_TIMED("release", inner_->release(s)); }
void TimedBackend::upload(DFloat dst, const float* host) { MIRA_TIMED("upload", inner_->upload(dst, host)); }
void TimedBackend::upload(DInt dst, const int32_t* host) { MIRA_TIMED("upload", inner_->upload(dst, host)); }
void TimedBackend::download(float* host, DFloat src) { MIRA_TIMED("download", inner_->download(host, src)); }
void TimedBackend::copy(DFloat dst, DFloat src) { MIRA_TIMED("copy", inner_->copy(dst, src)); }
void TimedBackend::zero(DFloat dst) { MIRA_TIMED("zero", inner_->zero(dst)); }

void TimedBackend::gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, DFloat a, int64_t lda,
                        DFloat b, int64_t ldb, float beta, DFloat c, int64_t ldc) {
  // A LoRA GEMM has the rank as one dimension; 64 is above any rank the benchmarks use and below the
  // smallest base-GEMM dimension of a GPT-2 shape (n_embd >= 768).
  const bool lora = std::min({m, n, k}) <= 64;
  MIRA_TIMED(lora ? "gemm.lora" : "gemm.base", inner_->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc));
}
void TimedBackend::layernorm_forward(DAct y, DFloat mean, DFloat rstd, DFloat x, DFloat w, DFloat b, int64_t n,
                                     int64_t c, double eps) {
  MIRA_TIMED("layernorm_forward", inner_->layernorm_forward(y, mean, rstd, x, w, b, n, c, eps));
}
void TimedBackend::residual_layernorm_forward(DFloat sum, DAct y, DFloat mean, DFloat rstd, DFloat a, DFloat r,
                                              DFloat w, DFloat b, int64_t n, int64_t c, double eps) {
  MIRA_TIMED("layernorm_forward", inner_->residual_layernorm_forward(sum, y, mean, rstd, a, r, w, b, n, c, eps));
}
void TimedBackend::layernorm_backward(DFloat dx, DFloat dw, DFloat db, DFloat dy, DFloat x, DFloat w, DFloat mean,
                                      DFloat rstd, int64_t n, int64_t c) {
  MIRA_TIMED("layernorm_backward", inner_->layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, n, c));
}
void TimedBackend::gelu_forward(DAct y, DAct x, int64_t n) {
  MIRA_TIMED("gelu_forward", inner_->gelu_forward(y, x, n));
}
void TimedBackend::gelu_backward(DFloat dx, DFloat dy, DAct x, int64_t n) {
  MIRA_TIMED("gelu_backward", inner_->gelu_backward(dx, dy, x, n));
}
void TimedBackend::attention_forward(DAct out, DFloat att, DFloat qkv, int64_t b, int64_t t, int64_t c, int64_t nh,
                                     DFloat scratch, const DropoutSite& drop, AttentionPrecision prec) {
  MIRA_TIMED("attention_forward", inner_->attention_forward(out, att, qkv, b, t, c, nh, scratch, drop, prec));
}
void TimedBackend::attention_backward(DFloat dqkv, DFloat scratch, DFloat dout, DFloat qkv, DAct out, DFloat att,
                                      int64_t b, int64_t t, int64_t c, int64_t nh, const DropoutSite& drop,
                                      AttentionPrecision prec) {
  MIRA_TIMED("attention_backward",
             inner_->attention_backward(dqkv, scratch, dout, qkv, out, att, b, t, c, nh, drop, prec));
}
void TimedBackend::embedding_forward(DFloat out, DInt ids, DFloat wte, DFloat wpe, int64_t b, int64_t t, int64_t c) {
  MIRA_TIMED("embedding_forward", inner_->embedding_forward(out, ids, wte, wpe, b, t, c));
}
void TimedBackend::linear_forward(DAct y, DAct x, DFloat w, DFloat bias, DFloat u, DFloat bl, float lora_scale,
                                  int64_t n, int64_t in, int64_t out, int64_t r) {
  // The base product dominates (the LoRA term is one extra r-deep block): a base GEMM, booked apart
  // from the backward's base GEMMs.
  MIRA_TIMED("gemm.base.forward", inner_->linear_forward(y, x, w, bias, u, bl, lora_scale, n, in, out, r));
}
void TimedBackend::bias_broadcast(DFloat y, DFloat bias, int64_t n, int64_t m) {
  MIRA_TIMED("bias_broadcast", inner_->bias_broadcast(y, bias, n, m));
}
void TimedBackend::add(DFloat y, DFloat a, DFloat b) { MIRA_TIMED("add", inner_->add(y, a, b)); }
void TimedBackend::scale(DFloat y, float s) { MIRA_TIMED("scale", inner_->scale(y, s)); }
void TimedBackend::dropout(DFloat y, DFloat x, float p, uint64_t stream, uint64_t base, bool accumulate) {
  MIRA_TIMED("dropout", inner_->dropout(y, x, p, stream, base, accumulate));
}
void TimedBackend::dropout_mask(DInt bits, int64_t n, float p, uint64_t stream, uint64_t base) {
  MIRA_TIMED("dropout", inner_->dropout_mask(bits, n, p, stream, base));
}
// The LoRA products (with their fused dropout) are booked with the other LoRA GEMMs.
void TimedBackend::lora_down(DFloat u, DAct x, DFloat a, const DropoutMask& mask, int64_t n, int64_t in, int64_t r) {
  MIRA_TIMED("gemm.lora", inner_->lora_down(u, x, a, mask, n, in, r));
}
void TimedBackend::lora_down_grad(DFloat ga, DFloat du, DAct x, const DropoutMask& mask, int64_t n, int64_t in,
                                  int64_t r) {
  MIRA_TIMED("gemm.lora", inner_->lora_down_grad(ga, du, x, mask, n, in, r));
}
void TimedBackend::lora_input_grad(DFloat dx, DFloat du, DFloat a, const DropoutMask& mask, int64_t n, int64_t in,
                                   int64_t r) {
  MIRA_TIMED("gemm.lora", inner_->lora_input_grad(dx, du, a, mask, n, in, r));
}
void TimedBackend::lm_head_ce(DFloat loss_rows, DFloat dh, DFloat dwte, DFloat h, DFloat wte, DInt targets,
                              DFloat weight, int64_t n, int64_t c, int64_t v, DFloat scratch) {
  MIRA_TIMED("lm_head_ce", inner_->lm_head_ce(loss_rows, dh, dwte, h, wte, targets, weight, n, c, v, scratch));
}
void TimedBackend::embedding_backward(DFloat dwte, DFloat dwpe, DFloat dout, DInt ids, int64_t b, int64_t t,
                                      int64_t c) {
  MIRA_TIMED("embedding_backward", inner_->embedding_backward(dwte, dwpe, dout, ids, b, t, c));
}
void TimedBackend::colsum_accumulate(DFloat db, DFloat dy, int64_t n, int64_t m) {
  MIRA_TIMED("colsum_accumulate", inner_->colsum_accumulate(db, dy, n, m));
}
void TimedBackend::adam_step(DFloat param, DFloat grad, DFloat m, DFloat v, double lr, double beta1, double beta2,
                             double eps, double weight_decay, bool decoupled, double bc1, double bc2) {
  MIRA_TIMED("adam_step",
             inner_->adam_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, bc1, bc2));
}
double TimedBackend::sum_squares(DFloat x) {
  double r = 0;
  MIRA_TIMED("sum_squares", r = inner_->sum_squares(x));
  return r;
}
double TimedBackend::sum(DFloat x) {
  double r = 0;
  MIRA_TIMED("sum", r = inner_->sum(x));
  return r;
}

void TimedBackend::freeze_weights(DFloat w, WeightPrecision p) { MIRA_TIMED("freeze_weights", inner_->freeze_weights(w, p)); }

#undef MIRA_TIMED

}  // namespace mira
