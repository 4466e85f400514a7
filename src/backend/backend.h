// The Backend interface: it owns device memory and runs every op of the model (DESIGN.md, Data
// flow). Model code holds DSpan handles - (pointer, length) views that only a backend can open - and
// moves data in and out with upload/download, so it never dereferences backend memory and a CUDA
// backend slots in without touching model code. All ops are row-major float32; shapes in comments.
// Every op gives the same bits for any thread count (reductions over fixed blocks, in order).
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace mira {

struct BackendAccess;

// A view of n elements of backend memory. Cheap to copy; does not own.
template <typename T>
class DSpan {
 public:
  DSpan() = default;
  int64_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  DSpan slice(int64_t offset, int64_t n) const;  // checked
 private:
  friend struct BackendAccess;
  T* p_ = nullptr;
  int64_t n_ = 0;
};

// For backend implementations only: open a span / make one from memory the backend owns.
struct BackendAccess {
  template <typename T>
  static T* ptr(const DSpan<T>& s) { return s.p_; }
  template <typename T>
  static DSpan<T> make(T* p, int64_t n) {
    DSpan<T> s;
    s.p_ = p;
    s.n_ = n;
    return s;
  }
};

using DFloat = DSpan<float>;
using DInt = DSpan<int32_t>;

// A dropout site for ops that fuse dropout: probability p (0 = off) and the counter-based stream
// and first index of its mask (kernels/cpu/elementwise.h, cpu_dropout, gives the masking rule).
struct DropoutSite {
  float p = 0.0f;
  uint64_t stream = 0;
  uint64_t base = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Memory: zero-filled allocations owned by the backend until release() or its destruction.
  virtual DFloat alloc_f32(int64_t n) = 0;
  virtual DInt alloc_i32(int64_t n) = 0;
  virtual void release(DFloat s) = 0;
  virtual void release(DInt s) = 0;
  virtual void upload(DFloat dst, const float* host) = 0;      // dst.size() elements
  virtual void upload(DInt dst, const int32_t* host) = 0;
  virtual void download(float* host, DFloat src) = 0;          // src.size() elements
  virtual void copy(DFloat dst, DFloat src) = 0;               // same sizes
  virtual void zero(DFloat dst) = 0;

  // C (m, n) = alpha * op(A) op(B) + beta * C, row-major with leading dimensions.
  virtual void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, DFloat a, int64_t lda,
                    DFloat b, int64_t ldb, float beta, DFloat c, int64_t ldc) = 0;
  // y (N, C), mean/rstd (N) = LayerNorm(x) with w, b (C).
  virtual void layernorm_forward(DFloat y, DFloat mean, DFloat rstd, DFloat x, DFloat w, DFloat b, int64_t n, int64_t c,
                                 double eps) = 0;
  // dx (N, C) += input gradient; dw, db (C) += parameter gradients unless empty.
  virtual void layernorm_backward(DFloat dx, DFloat dw, DFloat db, DFloat dy, DFloat x, DFloat w, DFloat mean,
                                  DFloat rstd, int64_t n, int64_t c) = 0;
  virtual void gelu_forward(DFloat y, DFloat x, int64_t n) = 0;
  virtual void gelu_backward(DFloat dx, DFloat dy, DFloat x, int64_t n) = 0;  // dx may alias dy
  // out (B, T, C), att (B, H, T, T) from qkv (B, T, 3C); causal; optional dropout on the
  // probabilities (scratch (B, H, T, T) used when drop.p > 0).
  virtual void attention_forward(DFloat out, DFloat att, DFloat qkv, int64_t b, int64_t t, int64_t c, int64_t nh,
                                 DFloat scratch, const DropoutSite& drop) = 0;
  // dqkv (B, T, 3C) overwritten; scratch (B, H, T, T); drop: the forward's site.
  virtual void attention_backward(DFloat dqkv, DFloat scratch, DFloat dout, DFloat qkv, DFloat att, int64_t b, int64_t t,
                                  int64_t c, int64_t nh, const DropoutSite& drop) = 0;
  // out (B*T, C) = wte[ids] + wpe[position].
  virtual void embedding_forward(DFloat out, DInt ids, DFloat wte, DFloat wpe, int64_t b, int64_t t, int64_t c) = 0;
  virtual void bias_broadcast(DFloat y, DFloat bias, int64_t n, int64_t m) = 0;  // y (N, M) = bias per row
  // y (N, out) = x (N, in) W (in, out) + bias (out) [+ lora_scale * u (N, r) bl (out, r)^T when u is
  // non-empty]: a frozen linear layer (HF Conv1D layout) and its LoRA term in one op, so a backend
  // can make it one pass over y. The same result as bias_broadcast, then gemm (beta 1), then gemm.
  virtual void linear_forward(DFloat y, DFloat x, DFloat w, DFloat bias, DFloat u, DFloat bl, float lora_scale,
                              int64_t n, int64_t in, int64_t out, int64_t r) = 0;
  virtual void add(DFloat y, DFloat a, DFloat b) = 0;                            // y = a + b, same sizes
  virtual void scale(DFloat y, float s) = 0;                                     // y *= s
  // y (+)= inverted dropout of x with keep mask from rng_at(stream, base + i).
  virtual void dropout(DFloat y, DFloat x, float p, uint64_t stream, uint64_t base, bool accumulate) = 0;
  // Fused LM head + cross-entropy (kernels/cpu/lm_head_ce.h); scratch of lm_head_ce_scratch(c, v).
  virtual int64_t lm_head_ce_scratch(int64_t c, int64_t v) const = 0;
  // dh empty: no input gradient; dwte non-empty (full fine-tuning): += gradient w.r.t. the tied wte.
  virtual void lm_head_ce(DFloat loss_rows, DFloat dh, DFloat dwte, DFloat h, DFloat wte, DInt targets, DFloat weight,
                          int64_t n, int64_t c, int64_t v, DFloat scratch) = 0;
  // Full fine-tuning: dwte[ids] += dout rows, dwpe[position] += dout rows (deterministic scatter-add).
  virtual void embedding_backward(DFloat dwte, DFloat dwpe, DFloat dout, DInt ids, int64_t b, int64_t t, int64_t c) = 0;
  // db (M) += column sums of dy (N, M).
  virtual void colsum_accumulate(DFloat db, DFloat dy, int64_t n, int64_t m) = 0;
  // One torch Adam (decoupled = false) or AdamW (decoupled = true) step; bc1/bc2 = 1 - beta^step.
  virtual void adam_step(DFloat param, DFloat grad, DFloat m, DFloat v, double lr, double beta1, double beta2,
                         double eps, double weight_decay, bool decoupled, double bc1, double bc2) = 0;
  virtual double sum_squares(DFloat x) = 0;  // thread-count invariant
  virtual double sum(DFloat x) = 0;          // thread-count invariant
};

// The CPU backend (kernels/cpu: OpenMP + OpenBLAS).
std::unique_ptr<Backend> backend_create_cpu();

template <typename T>
DSpan<T> DSpan<T>::slice(int64_t offset, int64_t n) const {
  if (offset < 0 || n < 0 || offset + n > n_) throw std::out_of_range("DSpan::slice out of range");
  return BackendAccess::make(p_ + offset, n);
}

}  // namespace mira
