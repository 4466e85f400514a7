// The Backend interface: it owns device memory and runs every op of the model (DESIGN.md, Data
// flow). Model code holds DSpan handles - (pointer, length) views that only a backend can open - and
// moves data in and out with upload/download, so it never dereferences backend memory and a CUDA
// backend slots in without touching model code. All ops are row-major float32, except activations
// (DAct: fp32 or bf16 storage); the bf16 weight and attention modes round operands only
// (freeze_weights, AttentionPrecision). Shapes in comments.
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

// bfloat16 storage: the upper 16 bits of an fp32 value (8 exponent bits, 7 stored mantissa bits).
struct Bf16 {
  uint16_t bits;
};
using DBf16 = DSpan<Bf16>;

// An activation tensor in fp32 or bf16 storage, for the ops that produce or read the model's saved
// activations (layernorm_forward, linear_forward, lora_down, gelu_*, attention_*). Made implicitly
// from either span. Semantics of the bf16 case, on every backend: a bf16 output holds the op's fp32
// result rounded to the nearest bf16 (ties to even); a bf16 input is read exactly (every bf16 value
// is an fp32 value), so the op computes as on fp32 storage holding those values.
class DAct {
 public:
  DAct() = default;
  DAct(DFloat f) : f_(f) {}                      // NOLINT: implicit by design
  DAct(DBf16 h) : h_(h), bf16_(true) {}          // NOLINT
  bool is_bf16() const { return bf16_; }
  int64_t size() const { return bf16_ ? h_.size() : f_.size(); }
  bool empty() const { return size() == 0; }
  DFloat f32() const;   // the fp32 span (throws on a bf16 one)
  DBf16 bf16() const;   // the bf16 span (throws on an fp32 one)
  DAct slice(int64_t offset, int64_t n) const { return bf16_ ? DAct(h_.slice(offset, n)) : DAct(f_.slice(offset, n)); }

 private:
  DFloat f_;
  DBf16 h_;
  bool bf16_ = false;
};

// A dropout site for ops that fuse dropout: probability p (0 = off) and the counter-based stream
// and first index of its mask (kernels/cpu/elementwise.h, cpu_dropout, gives the masking rule).
struct DropoutSite {
  float p = 0.0f;
  uint64_t stream = 0;
  uint64_t base = 0;
};

// A packed dropout keep mask (Backend::dropout_mask) and its probability p (keep scale 1 / (1 - p)).
struct DropoutMask {
  DInt bits;  // empty: no dropout
  float p = 0.0f;
};
inline int64_t dropout_mask_words(int64_t n) { return (n + 31) / 32; }

// Storage precision of a frozen weight tensor (Backend::freeze_weights).
enum class WeightPrecision { FP32, BF16 };
inline const char* weight_precision_name(WeightPrecision p) { return p == WeightPrecision::BF16 ? "bf16" : "fp32"; }

// Operand precision of the attention matmuls (Backend::attention_forward/backward): FP32, or BF16 =
// every matmul operand (q, k, v, the dropped probabilities, dout, the score gradients) rounded to
// bf16 (round to nearest even) with fp32 sums; softmax and logsumexp in fp32. kernels/cpu/attention.h
// lists the roundings exactly. The model passes BF16 when its base weights are bf16
// (model.base_precision), FP32 otherwise.
enum class AttentionPrecision { FP32, BF16 };
inline const char* attention_precision_name(AttentionPrecision p) {
  return p == AttentionPrecision::BF16 ? "bf16" : "fp32";
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Memory: zero-filled allocations owned by the backend until release() or its destruction.
  virtual DFloat alloc_f32(int64_t n) = 0;
  virtual DInt alloc_i32(int64_t n) = 0;
  virtual DBf16 alloc_bf16(int64_t n) = 0;
  virtual void release(DFloat s) = 0;
  virtual void release(DInt s) = 0;
  virtual void release(DBf16 s) = 0;
  virtual void upload(DFloat dst, const float* host) = 0;      // dst.size() elements
  virtual void upload(DInt dst, const int32_t* host) = 0;
  virtual void upload(DBf16 dst, const uint16_t* host) = 0;    // bf16 bit patterns
  virtual void download(float* host, DFloat src) = 0;          // src.size() elements
  virtual void download(uint16_t* host, DBf16 src) = 0;
  virtual void copy(DFloat dst, DFloat src) = 0;               // same sizes
  virtual void zero(DFloat dst) = 0;

  // C (m, n) = alpha * op(A) op(B) + beta * C, row-major with leading dimensions.
  virtual void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, DFloat a, int64_t lda,
                    DFloat b, int64_t ldb, float beta, DFloat c, int64_t ldc) = 0;
  // y (N, C), mean/rstd (N) = LayerNorm(x) with w, b (C).
  virtual void layernorm_forward(DAct y, DFloat mean, DFloat rstd, DFloat x, DFloat w, DFloat b, int64_t n, int64_t c,
                                 double eps) = 0;
  // The residual add fused into the next LayerNorm: sum (N, C) = a + r (written: the residual stream),
  // then y, mean, rstd = LayerNorm(sum) as layernorm_forward. The same bits as add() then
  // layernorm_forward(); one pass over the rows instead of two. sum may alias a or r.
  virtual void residual_layernorm_forward(DFloat sum, DAct y, DFloat mean, DFloat rstd, DFloat a, DFloat r, DFloat w,
                                          DFloat b, int64_t n, int64_t c, double eps) = 0;
  // dx (N, C) += input gradient; dw, db (C) += parameter gradients unless empty.
  virtual void layernorm_backward(DFloat dx, DFloat dw, DFloat db, DFloat dy, DFloat x, DFloat w, DFloat mean,
                                  DFloat rstd, int64_t n, int64_t c) = 0;
  virtual void gelu_forward(DAct y, DAct x, int64_t n) = 0;
  virtual void gelu_backward(DFloat dx, DFloat dy, DAct x, int64_t n) = 0;  // dx may alias dy
  // Causal multi-head self-attention (kernels/cpu/attention.h gives the semantics): out (B, T, C)
  // from qkv (B, T, 3C) laid out [q | k | v], H = nh heads of C / nh columns; optional dropout on
  // the probabilities (drop.p > 0; element (b, h, i, j) of the (B, H, T, T) probabilities uses mask
  // index drop.base + ((b*H + h)*T + i)*T + j, the rule of kernels/cpu/elementwise.h).
  // `att` and `scratch` are backend-defined state, sized by the two queries below (at least that
  // many floats; model code only allocates and passes them): `att` is written by the forward and
  // read by the backward of the same call pair (keep it untouched in between); `scratch` is
  // workspace of either pass (may be empty when the query gives 0). The CPU backend keeps the
  // (B, H, T, T) probabilities in att and uses a (B, H, T, T) scratch; the CUDA backend (flash-style
  // kernels, kernels/cuda/attention.h) keeps the per-row logsumexp (B, H, T) in att (in BF16 also
  // the bf16 q, k, v its backward reads) and the rows' rowsum(dout * out) (B, H, T) in scratch: no
  // T x T matrix. att must be 16-byte aligned.
  // prec: the matmul operand precision (AttentionPrecision); a backward must get the precision of
  // its forward. FP32 is the parity mode (fp32 CUDA kernels); BF16 runs the CUDA tensor-core kernels
  // (kernels/cuda/attention_bf16.cu) and the CPU's bf16 oracle.
  virtual int64_t attention_saved_floats(int64_t b, int64_t t, int64_t c, int64_t nh,
                                         AttentionPrecision prec) const = 0;
  virtual int64_t attention_scratch_floats(int64_t b, int64_t t, int64_t c, int64_t nh) const = 0;
  // Whether attention_backward reads qkv: if not, att holds what it needs, and the caller may reuse
  // qkv's memory once attention_forward is done (the model then keeps one qkv buffer, not one per
  // layer).
  virtual bool attention_backward_reads_qkv(AttentionPrecision prec) const = 0;
  virtual void attention_forward(DAct out, DFloat att, DFloat qkv, int64_t b, int64_t t, int64_t c, int64_t nh,
                                 DFloat scratch, const DropoutSite& drop, AttentionPrecision prec) = 0;
  // dqkv (B, T, 3C) overwritten, from dout (B, T, C), qkv (the forward's; not read when
  // attention_backward_reads_qkv(prec) is false), the forward's out (B, T, C; unchanged since) and
  // att; drop: the forward's site (masks are regenerated from their indices, never stored).
  virtual void attention_backward(DFloat dqkv, DFloat scratch, DFloat dout, DFloat qkv, DAct out, DFloat att,
                                  int64_t b, int64_t t, int64_t c, int64_t nh, const DropoutSite& drop,
                                  AttentionPrecision prec) = 0;
  // out (B*T, C) = wte[ids] + wpe[position].
  virtual void embedding_forward(DFloat out, DInt ids, DFloat wte, DFloat wpe, int64_t b, int64_t t, int64_t c) = 0;
  virtual void bias_broadcast(DFloat y, DFloat bias, int64_t n, int64_t m) = 0;  // y (N, M) = bias per row
  // y (N, out) = x (N, in) W (in, out) + bias (out) [+ lora_scale * u (N, r) bl (out, r)^T when u is
  // non-empty]: a frozen linear layer (HF Conv1D layout) and its LoRA term in one op, so a backend
  // can make it one pass over y. The same result as bias_broadcast, then gemm (beta 1), then gemm.
  virtual void linear_forward(DAct y, DAct x, DFloat w, DFloat bias, DFloat u, DFloat bl, float lora_scale,
                              int64_t n, int64_t in, int64_t out, int64_t r) = 0;
  virtual void add(DFloat y, DFloat a, DFloat b) = 0;                            // y = a + b, same sizes
  virtual void scale(DFloat y, float s) = 0;                                     // y *= s
  // y (+)= inverted dropout of x with keep mask from rng_at(stream, base + i).
  virtual void dropout(DFloat y, DFloat x, float p, uint64_t stream, uint64_t base, bool accumulate) = 0;
  // The keep flags of dropout(p, stream, base) for elements 0..n-1, packed: bit e % 32 of word e / 32
  // (dropout_mask_words(n) words, unused high bits 0). 1 bit per element instead of a dropped copy.
  virtual void dropout_mask(DInt bits, int64_t n, float p, uint64_t stream, uint64_t base) = 0;
  // The LoRA products around the LoRA-input dropout, with a packed mask of the (n, in) input (element
  // i * in + j) fused in; mask.bits empty = no dropout. Each equals bitwise dropout() of the input with
  // those keep flags (scale 1 / (1 - mask.p)) into a buffer, then the plain gemm, so a backend can
  // read the mask inside its product kernels instead of materialising the dropped-out input:
  //   lora_down        u (n, r) = dropout(x) A^T      x (n, in), A (r, in)
  //   lora_down_grad   gA (r, in) = du^T dropout(x)   du (n, r); gA overwritten
  //   lora_input_grad  dx (n, in) += dropout(du A)    (no mask: gemm with beta 1)
  virtual void lora_down(DFloat u, DAct x, DFloat a, const DropoutMask& mask, int64_t n, int64_t in, int64_t r) = 0;
  virtual void lora_down_grad(DFloat ga, DFloat du, DAct x, const DropoutMask& mask, int64_t n, int64_t in,
                              int64_t r) = 0;
  virtual void lora_input_grad(DFloat dx, DFloat du, DFloat a, const DropoutMask& mask, int64_t n, int64_t in,
                               int64_t r) = 0;
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

  // Frozen weights (the "bf16 frozen base weights" mode; model.base_precision). Declares w (a range
  // of this backend's memory, e.g. one tensor inside the model's weight buffer) frozen with storage
  // precision p. From the call on, the contents of w are read-only (no op may write them, upload
  // included) until the allocation holding w is released. FP32: no effect. BF16, exactly:
  //  - w's values become bf16(w): every element rounded to bfloat16 (round to nearest, ties to even;
  //    8 exponent bits kept, so no overflow or underflow beyond fp32's). download(w), and any op that
  //    reads w (embedding_forward's wte/wpe, copy, ...), sees the rounded values.
  //  - gemm: when A or B lies inside a frozen-bf16 range (a slice of a frozen tensor counts), the
  //    product is computed as op(bf16(A)) op(bf16(B)) with fp32 accumulation: the other operand is
  //    rounded to bf16 too (not stored back). Products of two bf16 values are exact in fp32, so the
  //    result differs from an exact sum of those products only by fp32 summation rounding. alpha,
  //    beta and C stay fp32.
  //  - linear_forward with w frozen: y = bias + bf16(x) bf16(W) (fp32 accumulation) + lora_scale *
  //    u bl^T, the LoRA term in fp32 as before.
  //  - lm_head_ce with wte frozen: logits = bf16(h) bf16(wte)^T and dh = bf16(dlogits) bf16(wte);
  //    softmax, loss and dlogits in fp32. dwte must be empty (a frozen weight gets no gradient).
  // Every other op and operand is unchanged fp32. Ranges must not overlap a range frozen earlier
  // (freezing the same range twice is a no-op). Weights that are trained (full fine-tuning) must
  // not be frozen. The CPU backend is the oracle: it rounds in place and rounds the other operand
  // into scratch before its fp32 GEMM; a GPU backend keeps a bf16 copy and runs bf16 tensor-core
  // GEMMs with fp32 accumulation (equal up to fp32 summation order).
  virtual void freeze_weights(DFloat w, WeightPrecision p) = 0;
};

// The CPU backend (kernels/cpu: OpenMP + OpenBLAS).
std::unique_ptr<Backend> backend_create_cpu();

template <typename T>
DSpan<T> DSpan<T>::slice(int64_t offset, int64_t n) const {
  if (offset < 0 || n < 0 || offset + n > n_) throw std::out_of_range("DSpan::slice out of range");
  return BackendAccess::make(p_ + offset, n);
}

inline DFloat DAct::f32() const {
  if (bf16_) throw std::logic_error("DAct::f32 on a bf16 activation");
  return f_;
}
inline DBf16 DAct::bf16() const {
  if (!bf16_) throw std::logic_error("DAct::bf16 on an fp32 activation");
  return h_;
}

}  // namespace mira
