// The CPU backend: host memory (64-byte aligned, zero-filled) and the kernels of kernels/cpu.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <vector>

#include "backend/backend.h"
#include "backend/frozen_ranges.h"
#include "backend/lora_compose.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/gelu.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/lm_head_ce.h"
#include "kernels/cpu/reduce.h"
#include "runtime/error.h"

namespace mira {

namespace {

template <typename T>
T* P(const DSpan<T>& s) { return BackendAccess::ptr(s); }

class CpuBackend final : public Backend {
 public:
  ~CpuBackend() override {
    for (auto& kv : blocks_) std::free(kv.first);
  }
  std::string name() const override { return "cpu"; }

  DFloat alloc_f32(int64_t n) override { return BackendAccess::make(static_cast<float*>(raw_alloc(n * 4)), n); }
  DInt alloc_i32(int64_t n) override { return BackendAccess::make(static_cast<int32_t*>(raw_alloc(n * 4)), n); }
  DBf16 alloc_bf16(int64_t n) override { return BackendAccess::make(static_cast<Bf16*>(raw_alloc(n * 2)), n); }
  void release(DFloat s) override { raw_free(P(s)); }
  void release(DInt s) override { raw_free(P(s)); }
  void release(DBf16 s) override { raw_free(P(s)); }
  void upload(DBf16 dst, const uint16_t* host) override { std::memcpy(P(dst), host, 2 * (size_t)dst.size()); }
  void download(uint16_t* host, DBf16 src) override { std::memcpy(host, P(src), 2 * (size_t)src.size()); }
  void upload(DFloat dst, const float* host) override {
    check_writable(dst, "upload");
    std::memcpy(P(dst), host, 4 * (size_t)dst.size());
  }
  void upload(DInt dst, const int32_t* host) override { std::memcpy(P(dst), host, 4 * (size_t)dst.size()); }
  void download(float* host, DFloat src) override { std::memcpy(host, P(src), 4 * (size_t)src.size()); }
  void copy(DFloat dst, DFloat src) override {
    MIRA_CHECK(dst.size() == src.size(), "copy size mismatch");
    check_writable(dst, "copy");
    std::memmove(P(dst), P(src), 4 * (size_t)dst.size());
  }
  void zero(DFloat dst) override {
    check_writable(dst, "zero");
    std::memset(P(dst), 0, 4 * (size_t)dst.size());
  }

  void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, DFloat a, int64_t lda, DFloat b,
            int64_t ldb, float beta, DFloat c, int64_t ldc) override {
    if (!frozen_.empty()) {  // fp32 mode (nothing frozen) pays this one test
      const bool fa = frozen_bf16(a), fb = frozen_bf16(b);
      if (fa || fb) {
        check_writable(c, "gemm output");
        gemm_bf16(ta, tb, m, n, k, alpha, P(a), lda, fa, P(b), ldb, fb, beta, P(c), ldc);
        return;
      }
    }
    cpu_gemm<float>(ta, tb, m, n, k, alpha, P(a), lda, P(b), ldb, beta, P(c), ldc);
  }
  void layernorm_forward(DAct y, DFloat mean, DFloat rstd, DFloat x, DFloat w, DFloat b, int64_t n, int64_t c,
                         double eps) override {
    float* py = act_out(y, n * c);
    cpu_layernorm_forward<float>(py, P(mean), P(rstd), P(x), P(w), P(b), n, c, eps);
    act_out_done(y, py, n * c);
  }
  void residual_layernorm_forward(DFloat sum, DAct y, DFloat mean, DFloat rstd, DFloat a, DFloat r, DFloat w,
                                  DFloat b, int64_t n, int64_t c, double eps) override {
    float* py = act_out(y, n * c);
    cpu_residual_layernorm_forward<float>(P(sum), py, P(mean), P(rstd), P(a), P(r), P(w), P(b), n, c, eps);
    act_out_done(y, py, n * c);
  }
  void layernorm_backward(DFloat dx, DFloat dw, DFloat db, DFloat dy, DFloat x, DFloat w, DFloat mean, DFloat rstd,
                          int64_t n, int64_t c) override {
    cpu_layernorm_backward<float>(P(dx), P(dw), P(db), P(dy), P(x), P(w), P(mean), P(rstd), n, c);
  }
  void gelu_forward(DAct y, DAct x, int64_t n) override {
    const float* px = act_in(x, 0, n);
    float* py = act_out(y, n);
    cpu_gelu_forward<float>(py, px, n);
    act_out_done(y, py, n);
  }
  void gelu_backward(DFloat dx, DFloat dy, DAct x, int64_t n) override {
    cpu_gelu_backward<float>(P(dx), P(dy), act_in(x, 0, n), n);
  }
  // att: the (B, H, T, T) probabilities; scratch (B, H, T, T): dropped probabilities (forward, only
  // when dropping) and the probability gradient (backward).
  int64_t attention_saved_floats(int64_t b, int64_t t, int64_t c, int64_t nh, AttentionPrecision) const override {
    return b * nh * t * t;
  }
  bool attention_backward_reads_qkv(AttentionPrecision) const override { return true; }
  int64_t attention_scratch_floats(int64_t b, int64_t t, int64_t c, int64_t nh) const override {
    return b * nh * t * t;
  }
  // prec BF16: the bf16 operand oracle of kernels/cpu/attention.h (rounded copies, fp32 sums).
  void attention_forward(DAct out, DFloat att, DFloat qkv, int64_t b, int64_t t, int64_t c, int64_t nh, DFloat scratch,
                         const DropoutSite& drop, AttentionPrecision prec) override {
    float* po = act_out(out, b * t * c);
    cpu_attention_forward<float>(po, P(att), P(qkv), b, t, c, nh, P(scratch), key(drop),
                                 prec == AttentionPrecision::BF16);
    act_out_done(out, po, b * t * c);
  }
  // out is not needed: att holds the probabilities.
  void attention_backward(DFloat dqkv, DFloat scratch, DFloat dout, DFloat qkv, DAct /*out*/, DFloat att, int64_t b,
                          int64_t t, int64_t c, int64_t nh, const DropoutSite& drop, AttentionPrecision prec) override {
    cpu_attention_backward<float>(P(dqkv), P(scratch), P(dout), P(qkv), P(att), b, t, c, nh, key(drop),
                                  prec == AttentionPrecision::BF16);
  }
  void embedding_forward(DFloat out, DInt ids, DFloat wte, DFloat wpe, int64_t b, int64_t t, int64_t c) override {
    cpu_embedding_forward<float>(P(out), P(ids), P(wte), P(wpe), b, t, c);
  }
  void linear_forward(DAct y, DAct x, DFloat w, DFloat bias, DFloat u, DFloat bl, float lora_scale, int64_t n,
                      int64_t in, int64_t out, int64_t r) override {
    const float* px = act_in(x, 0, n * in);
    float* py = act_out(y, n * out);
    if (!x.is_bf16() && !frozen_.empty() && frozen_bf16(w)) {  // bf16(x) bf16(W): x rounded into scratch
      float* xs = scratch(0, n * in);
      cpu_round_bf16(xs, px, n * in);
      px = xs;
    }
    cpu_linear_forward(py, px, P(w), P(bias), u.empty() ? nullptr : P(u), u.empty() ? nullptr : P(bl), lora_scale, n,
                       in, out, u.empty() ? 0 : r);
    act_out_done(y, py, n * out);
  }
  void bias_broadcast(DFloat y, DFloat bias, int64_t n, int64_t m) override {
    cpu_bias_broadcast<float>(P(y), P(bias), n, m);
  }
  void add(DFloat y, DFloat a, DFloat b) override { cpu_add<float>(P(y), P(a), P(b), y.size()); }
  void scale(DFloat y, float s) override {
    check_writable(y, "scale");
    cpu_scale<float>(P(y), y.size(), s);
  }
  void dropout(DFloat y, DFloat x, float p, uint64_t stream, uint64_t base, bool accumulate) override {
    cpu_dropout<float>(P(y), P(x), y.size(), p, stream, base, accumulate);
  }
  void dropout_mask(DInt bits, int64_t n, float p, uint64_t stream, uint64_t base) override {
    MIRA_CHECK(bits.size() >= dropout_mask_words(n), "dropout_mask: fewer than dropout_mask_words(n) words");
    cpu_dropout_mask(reinterpret_cast<uint32_t*>(P(bits)), n, p, stream, base);
  }
  // The LoRA products by their definition (backend/lora_compose.h), the masked input in lora_scratch_.
  void lora_down(DFloat u, DAct x, DFloat a, const DropoutMask& mask, int64_t n, int64_t in, int64_t r) override {
    lora_down_composed(*this, u, act_in_span(x, 0, n * in), a, mask, n, in, r, lora_scratch_, apply_mask(mask));
  }
  void lora_down_grad(DFloat ga, DFloat du, DAct x, const DropoutMask& mask, int64_t n, int64_t in,
                      int64_t r) override {
    lora_down_grad_composed(*this, ga, du, act_in_span(x, 0, n * in), mask, n, in, r, lora_scratch_,
                            apply_mask(mask));
  }
  void lora_input_grad(DFloat dx, DFloat du, DFloat a, const DropoutMask& mask, int64_t n, int64_t in,
                       int64_t r) override {
    lora_input_grad_composed(*this, dx, du, a, mask, n, in, r, lora_scratch_, apply_mask(mask));
  }
  int64_t lm_head_ce_scratch(int64_t c, int64_t v) const override { return cpu_lm_head_ce_scratch(c, v); }
  void lm_head_ce(DFloat loss_rows, DFloat dh, DFloat dwte, DFloat h, DFloat wte, DInt targets, DFloat weight, int64_t n,
                  int64_t c, int64_t v, DFloat scratch) override {
    const bool bf16 = !frozen_.empty() && frozen_bf16(wte);
    MIRA_CHECK(!bf16 || dwte.empty(), "lm_head_ce: a gradient for a frozen wte was requested");
    cpu_lm_head_ce<float>(P(loss_rows), dh.empty() ? nullptr : P(dh), dwte.empty() ? nullptr : P(dwte), P(h), P(wte),
                          P(targets), P(weight), n, c, v, P(scratch), bf16);
  }
  void embedding_backward(DFloat dwte, DFloat dwpe, DFloat dout, DInt ids, int64_t b, int64_t t, int64_t c) override {
    cpu_embedding_backward<float>(P(dwte), P(dwpe), P(dout), P(ids), b, t, c);
  }
  void colsum_accumulate(DFloat db, DFloat dy, int64_t n, int64_t m) override {
    cpu_colsum_accumulate<float>(P(db), P(dy), n, m);
  }
  void adam_step(DFloat param, DFloat grad, DFloat m, DFloat v, double lr, double beta1, double beta2, double eps,
                 double weight_decay, bool decoupled, double bc1, double bc2) override {
    check_writable(param, "adam_step");
    cpu_adam_step<float>(P(param), P(grad), P(m), P(v), param.size(), lr, beta1, beta2, eps, weight_decay, decoupled,
                         bc1, bc2);
  }
  double sum_squares(DFloat x) override { return cpu_sum_squares<float>(P(x), x.size()); }
  double sum(DFloat x) override { return cpu_sum<float>(P(x), x.size()); }

  // The oracle of the bf16 mode (backend.h): w rounded to bf16 in place (kept in fp32 storage) and
  // its range recorded; the GEMMs that read it round their other operand into scratch.
  void freeze_weights(DFloat w, WeightPrecision p) override {
    if (p != WeightPrecision::BF16 || w.empty() || frozen_.contains_exactly(P(w), w.size())) return;
    frozen_.insert(P(w), w.size(), nullptr);  // checks that it overlaps no earlier range
    cpu_round_bf16(P(w), P(w), w.size());
  }

 private:
  // y (+)= x through the mask (cpu_dropout's operations).
  static ApplyMask apply_mask(const DropoutMask& mask) {
    return [&mask](DFloat y, DFloat x, bool accumulate) {
      MIRA_CHECK(mask.bits.size() >= dropout_mask_words(x.size()), "lora op: dropout mask smaller than the input");
      cpu_dropout_apply_mask<float>(P(y), P(x), reinterpret_cast<const uint32_t*>(P(mask.bits)), x.size(), mask.p,
                                    accumulate);
    };
  }
  LoraScratch lora_scratch_;  // the composed LoRA ops' buffer

  // Whether s is (a slice of) a frozen-bf16 weight. Only called when something is frozen.
  bool frozen_bf16(const DFloat& s) const { return frozen_.find(P(s), s.size()) != nullptr; }
  // Writes into frozen weights are refused (their values are the bf16-rounded ones).
  void check_writable(const DFloat& s, const char* op) const {
    if (!frozen_.empty())
      MIRA_CHECK(!frozen_.overlaps(P(s), s.size()), std::string("cpu backend: ") + op + " writes into a frozen weight");
  }
  // Activations in bf16 storage (backend.h, DAct). An input: its first n values widened into slot i
  // (exact); an fp32 input as is. An output: fp32 storage as is; bf16 storage computed into the
  // output slot, then rounded into place by act_out_done (only the n values the op wrote).
  const float* act_in(const DAct& a, int i, int64_t n) {
    if (!a.is_bf16()) return P(a.f32());
    MIRA_CHECK(a.size() >= n, "cpu backend: bf16 activation smaller than the op's shape");
    float* p = act_scratch(i, n);
    cpu_widen_bf16(p, reinterpret_cast<const uint16_t*>(P(a.bf16())), n);
    return p;
  }
  DFloat act_in_span(const DAct& a, int i, int64_t n) {
    return a.is_bf16() ? BackendAccess::make(const_cast<float*>(act_in(a, i, n)), n) : a.f32();
  }
  float* act_out(const DAct& a, int64_t n) {
    if (!a.is_bf16()) return P(a.f32());
    MIRA_CHECK(a.size() >= n, "cpu backend: bf16 activation smaller than the op's shape");
    return act_scratch(ACT_OUT, n);
  }
  void act_out_done(const DAct& a, const float* tmp, int64_t n) {
    if (a.is_bf16()) cpu_narrow_bf16(reinterpret_cast<uint16_t*>(P(a.bf16())), tmp, n);
  }
  static constexpr int ACT_OUT = 2;
  float* act_scratch(int i, int64_t n) {
    std::vector<float>& v = act_scratch_[i];
    if ((int64_t)v.size() < n) v.resize((size_t)n);
    return v.data();
  }
  std::vector<float> act_scratch_[3];  // widened bf16 inputs (slots 0, 1), an fp32 output (slot 2)

  // Scratch slot i (0: the rounded A or x, 1: the rounded B) of at least n floats, grown and kept.
  float* scratch(int i, int64_t n) {
    std::vector<float>& v = scratch_[i];
    if ((int64_t)v.size() < n) v.resize((size_t)n);
    return v.data();
  }
  // C = alpha op(bf16(A)) op(bf16(B)) + beta C: a frozen operand already holds bf16 values, the other
  // one is rounded into a dense scratch copy (same transposition, leading dimension = its width).
  void gemm_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 bool a_frozen, const float* b, int64_t ldb, bool b_frozen, float beta, float* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (!a_frozen) {
      const int64_t rows = ta ? k : m, cols = ta ? m : k;  // A as stored
      float* as = scratch(0, rows * cols);
      cpu_round_bf16_2d(as, a, rows, cols, lda);
      a = as, lda = std::max<int64_t>(cols, 1);
    }
    if (!b_frozen) {
      const int64_t rows = tb ? n : k, cols = tb ? k : n;  // B as stored
      float* bs = scratch(1, rows * cols);
      cpu_round_bf16_2d(bs, b, rows, cols, ldb);
      b = bs, ldb = std::max<int64_t>(cols, 1);
    }
    cpu_gemm<float>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }

  static DropoutKey key(const DropoutSite& d) { return DropoutKey{d.p, d.stream, d.base}; }
  void* raw_alloc(int64_t bytes) {
    const size_t sz = ((size_t)std::max<int64_t>(bytes, 64) + 63) / 64 * 64;  // aligned_alloc needs a multiple
    void* p = std::aligned_alloc(64, sz);                                     // 64 B: a cache line / AVX-512
    if (!p) throw InternalError("cpu backend: out of memory allocating " + std::to_string(bytes) + " bytes");
    std::memset(p, 0, sz);
    blocks_[p] = sz;
    return p;
  }
  void raw_free(void* p) {
    if (!p) return;
    auto it = blocks_.find(p);
    MIRA_CHECK(it != blocks_.end(), "release of memory this backend does not own");
    if (!frozen_.empty()) frozen_.remove_block(p, static_cast<const char*>(p) + it->second);  // they end with it
    std::free(p);
    blocks_.erase(it);
  }
  std::map<void*, size_t> blocks_;
  FrozenRanges frozen_;                // frozen-bf16 weights
  std::vector<float> scratch_[2];      // bf16-rounded operands (grown on demand, kept)
};

}  // namespace

std::unique_ptr<Backend> backend_create_cpu() { return std::make_unique<CpuBackend>(); }

}  // namespace mira
