// The CPU backend: host memory (64-byte aligned, zero-filled) and the kernels of kernels/cpu.
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>

#include "backend/backend.h"
#include "kernels/cpu/attention.h"
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
  void release(DFloat s) override { raw_free(P(s)); }
  void release(DInt s) override { raw_free(P(s)); }
  void upload(DFloat dst, const float* host) override { std::memcpy(P(dst), host, 4 * (size_t)dst.size()); }
  void upload(DInt dst, const int32_t* host) override { std::memcpy(P(dst), host, 4 * (size_t)dst.size()); }
  void download(float* host, DFloat src) override { std::memcpy(host, P(src), 4 * (size_t)src.size()); }
  void copy(DFloat dst, DFloat src) override {
    MIRA_CHECK(dst.size() == src.size(), "copy size mismatch");
    std::memmove(P(dst), P(src), 4 * (size_t)dst.size());
  }
  void zero(DFloat dst) override { std::memset(P(dst), 0, 4 * (size_t)dst.size()); }

  void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, DFloat a, int64_t lda, DFloat b,
            int64_t ldb, float beta, DFloat c, int64_t ldc) override {
    cpu_gemm<float>(ta, tb, m, n, k, alpha, P(a), lda, P(b), ldb, beta, P(c), ldc);
  }
  void layernorm_forward(DFloat y, DFloat mean, DFloat rstd, DFloat x, DFloat w, DFloat b, int64_t n, int64_t c,
                         double eps) override {
    cpu_layernorm_forward<float>(P(y), P(mean), P(rstd), P(x), P(w), P(b), n, c, eps);
  }
  void layernorm_backward(DFloat dx, DFloat dw, DFloat db, DFloat dy, DFloat x, DFloat w, DFloat mean, DFloat rstd,
                          int64_t n, int64_t c) override {
    cpu_layernorm_backward<float>(P(dx), P(dw), P(db), P(dy), P(x), P(w), P(mean), P(rstd), n, c);
  }
  void gelu_forward(DFloat y, DFloat x, int64_t n) override { cpu_gelu_forward<float>(P(y), P(x), n); }
  void gelu_backward(DFloat dx, DFloat dy, DFloat x, int64_t n) override {
    cpu_gelu_backward<float>(P(dx), P(dy), P(x), n);
  }
  void attention_forward(DFloat out, DFloat att, DFloat qkv, int64_t b, int64_t t, int64_t c, int64_t nh, DFloat scratch,
                         const DropoutSite& drop) override {
    cpu_attention_forward<float>(P(out), P(att), P(qkv), b, t, c, nh, P(scratch), key(drop));
  }
  void attention_backward(DFloat dqkv, DFloat scratch, DFloat dout, DFloat qkv, DFloat att, int64_t b, int64_t t,
                          int64_t c, int64_t nh, const DropoutSite& drop) override {
    cpu_attention_backward<float>(P(dqkv), P(scratch), P(dout), P(qkv), P(att), b, t, c, nh, key(drop));
  }
  void embedding_forward(DFloat out, DInt ids, DFloat wte, DFloat wpe, int64_t b, int64_t t, int64_t c) override {
    cpu_embedding_forward<float>(P(out), P(ids), P(wte), P(wpe), b, t, c);
  }
  void linear_forward(DFloat y, DFloat x, DFloat w, DFloat bias, DFloat u, DFloat bl, float lora_scale, int64_t n,
                      int64_t in, int64_t out, int64_t r) override {
    cpu_linear_forward(P(y), P(x), P(w), P(bias), u.empty() ? nullptr : P(u), u.empty() ? nullptr : P(bl), lora_scale,
                       n, in, out, u.empty() ? 0 : r);
  }
  void bias_broadcast(DFloat y, DFloat bias, int64_t n, int64_t m) override {
    cpu_bias_broadcast<float>(P(y), P(bias), n, m);
  }
  void add(DFloat y, DFloat a, DFloat b) override { cpu_add<float>(P(y), P(a), P(b), y.size()); }
  void scale(DFloat y, float s) override { cpu_scale<float>(P(y), y.size(), s); }
  void dropout(DFloat y, DFloat x, float p, uint64_t stream, uint64_t base, bool accumulate) override {
    cpu_dropout<float>(P(y), P(x), y.size(), p, stream, base, accumulate);
  }
  int64_t lm_head_ce_scratch(int64_t c, int64_t v) const override { return cpu_lm_head_ce_scratch(c, v); }
  void lm_head_ce(DFloat loss_rows, DFloat dh, DFloat dwte, DFloat h, DFloat wte, DInt targets, DFloat weight, int64_t n,
                  int64_t c, int64_t v, DFloat scratch) override {
    cpu_lm_head_ce<float>(P(loss_rows), dh.empty() ? nullptr : P(dh), dwte.empty() ? nullptr : P(dwte), P(h), P(wte),
                          P(targets), P(weight), n, c, v, P(scratch));
  }
  void embedding_backward(DFloat dwte, DFloat dwpe, DFloat dout, DInt ids, int64_t b, int64_t t, int64_t c) override {
    cpu_embedding_backward<float>(P(dwte), P(dwpe), P(dout), P(ids), b, t, c);
  }
  void colsum_accumulate(DFloat db, DFloat dy, int64_t n, int64_t m) override {
    cpu_colsum_accumulate<float>(P(db), P(dy), n, m);
  }
  void adam_step(DFloat param, DFloat grad, DFloat m, DFloat v, double lr, double beta1, double beta2, double eps,
                 double weight_decay, bool decoupled, double bc1, double bc2) override {
    cpu_adam_step<float>(P(param), P(grad), P(m), P(v), param.size(), lr, beta1, beta2, eps, weight_decay, decoupled,
                         bc1, bc2);
  }
  double sum_squares(DFloat x) override { return cpu_sum_squares<float>(P(x), x.size()); }
  double sum(DFloat x) override { return cpu_sum<float>(P(x), x.size()); }

 private:
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
    std::free(p);
    blocks_.erase(it);
  }
  std::map<void*, size_t> blocks_;
};

}  // namespace

std::unique_ptr<Backend> backend_create_cpu() { return std::make_unique<CpuBackend>(); }

}  // namespace mira
