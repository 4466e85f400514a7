// A profiling decorator Backend: forwards every call to an inner backend unchanged and adds the
// wall time of each call to a per-op total (a GEMM is keyed by its role, "gemm.lora" when one of
// m, n, k is a LoRA rank-sized dimension, else "gemm.base"). Used by bench/train_cpu_main.cpp when
// MIRA_PROFILE=1; when profiling is off this class is simply not constructed, so it costs nothing.
// Timing is only meaningful when each call has finished when it returns: true of the CPU backend;
// for an asynchronous one (CUDA) pass a `fence` that waits for the device (cudaDeviceSynchronize):
// it runs before and after every forwarded call, so each op is timed alone (bench/train_gpu_main.cpp).
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "backend/backend.h"

namespace mira {

struct OpTime {
  double seconds = 0.0;
  int64_t calls = 0;
};

class TimedBackend : public Backend {
 public:
  explicit TimedBackend(std::unique_ptr<Backend> inner, std::function<void()> fence = {})
      : inner_(std::move(inner)), fence_(std::move(fence)) {}
  // Per-op totals since construction or the last reset().
  const std::map<std::string, OpTime>& totals() const { return totals_; }
  void reset() { totals_.clear(); }

  std::string name() const override { return inner_->name() + "+timed"; }
  DFloat alloc_f32(int64_t n) override;
  DInt alloc_i32(int64_t n) override;
  DBf16 alloc_bf16(int64_t n) override;
  void release(DFloat s) override;
  void release(DInt s) override;
  void release(DBf16 s) override;
  void upload(DFloat dst, const float* host) override;
  void upload(DInt dst, const int32_t* host) override;
  void upload(DBf16 dst, const uint16_t* host) override;
  void download(float* host, DFloat src) override;
  void download(uint16_t* host, DBf16 src) override;
  void copy(DFloat dst, DFloat src) override;
  void zero(DFloat dst) override;
  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, DFloat a, int64_t lda, DFloat b,
            int64_t ldb, float beta, DFloat c, int64_t ldc) override;
  void layernorm_forward(DAct y, DFloat mean, DFloat rstd, DFloat x, DFloat w, DFloat b, int64_t n, int64_t c,
                         double eps) override;
  void residual_layernorm_forward(DFloat sum, DAct y, DFloat mean, DFloat rstd, DFloat a, DFloat r, DFloat w,
                                  DFloat b, int64_t n, int64_t c, double eps) override;
  void layernorm_backward(DFloat dx, DFloat dw, DFloat db, DFloat dy, DFloat x, DFloat w, DFloat mean, DFloat rstd,
                          int64_t n, int64_t c) override;
  void gelu_forward(DAct y, DAct x, int64_t n) override;
  void gelu_backward(DFloat dx, DFloat dy, DAct x, int64_t n) override;
  int64_t attention_saved_floats(int64_t b, int64_t t, int64_t c, int64_t nh, AttentionPrecision prec) const override {
    return inner_->attention_saved_floats(b, t, c, nh, prec);
  }
  bool attention_backward_reads_qkv(AttentionPrecision prec) const override {
    return inner_->attention_backward_reads_qkv(prec);
  }
  int64_t attention_scratch_floats(int64_t b, int64_t t, int64_t c, int64_t nh) const override {
    return inner_->attention_scratch_floats(b, t, c, nh);
  }
  void attention_forward(DAct out, DFloat att, DFloat qkv, int64_t b, int64_t t, int64_t c, int64_t nh,
                         DFloat scratch, const DropoutSite& drop, AttentionPrecision prec) override;
  void attention_backward(DFloat dqkv, DFloat scratch, DFloat dout, DFloat qkv, DAct out, DFloat att, int64_t b,
                          int64_t t, int64_t c, int64_t nh, const DropoutSite& drop, AttentionPrecision prec) override;
  void embedding_forward(DFloat out, DInt ids, DFloat wte, DFloat wpe, int64_t b, int64_t t, int64_t c) override;
  void bias_broadcast(DFloat y, DFloat bias, int64_t n, int64_t m) override;
  void linear_forward(DAct y, DAct x, DFloat w, DFloat bias, DFloat u, DFloat bl, float lora_scale, int64_t n,
                      int64_t in, int64_t out, int64_t r) override;
  void add(DFloat y, DFloat a, DFloat b) override;
  void scale(DFloat y, float s) override;
  void dropout(DFloat y, DFloat x, float p, uint64_t stream, uint64_t base, bool accumulate) override;
  void dropout_mask(DInt bits, int64_t n, float p, uint64_t stream, uint64_t base) override;
  void lora_down(DFloat u, DAct x, DFloat a, const DropoutMask& mask, int64_t n, int64_t in, int64_t r) override;
  void lora_down_grad(DFloat ga, DFloat du, DAct x, const DropoutMask& mask, int64_t n, int64_t in,
                      int64_t r) override;
  void lora_input_grad(DFloat dx, DFloat du, DFloat a, const DropoutMask& mask, int64_t n, int64_t in,
                       int64_t r) override;
  int64_t lm_head_ce_scratch(int64_t c, int64_t v) const override { return inner_->lm_head_ce_scratch(c, v); }
  void lm_head_ce(DFloat loss_rows, DFloat dh, DFloat dwte, DFloat h, DFloat wte, DInt targets, DFloat weight,
                  int64_t n, int64_t c, int64_t v, DFloat scratch) override;
  void embedding_backward(DFloat dwte, DFloat dwpe, DFloat dout, DInt ids, int64_t b, int64_t t, int64_t c) override;
  void colsum_accumulate(DFloat db, DFloat dy, int64_t n, int64_t m) override;
  void adam_step(DFloat param, DFloat grad, DFloat m, DFloat v, double lr, double beta1, double beta2, double eps,
                 double weight_decay, bool decoupled, double bc1, double bc2) override;
  double sum_squares(DFloat x) override;
  double sum(DFloat x) override;
  void freeze_weights(DFloat w, WeightPrecision p) override;

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start();  // fence, then now
  void add_time(const char* op, Clock::time_point t0);  // fence, then book now - t0 under op
  std::unique_ptr<Backend> inner_;
  std::function<void()> fence_;
  std::map<std::string, OpTime> totals_;
};

}  // namespace mira
