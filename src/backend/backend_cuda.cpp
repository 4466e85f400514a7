// The CUDA backend: device memory (cudaMalloc, zero-filled, released on destruction) and the kernels
// of kernels/cuda, all on one stream with one cuBLAS handle. fp32 "parity mode": every op follows the
// CPU backend's semantics (kernels/cpu), GEMMs in CUBLAS_PEDANTIC_MATH, so results can be compared
// with the CPU within tight tolerances (tests/gpu). Host <-> device copies and reductions that return
// a value synchronise the stream; everything else is asynchronous, in stream order.
// Built only with the CUDA backend (MIRA_HAVE_CUDA). NOT yet run on a GPU (docs/cuda.md).
#ifdef MIRA_HAVE_CUDA
#include "backend/backend_cuda.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "kernels/cpu/elementwise.h"  // dropout_threshold: the one definition of the masking rule
#include "kernels/cuda/adam.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/gelu.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/gemm_lt.h"
#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/lm_head_ce.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/skinny_gemm.h"
#include "backend/frozen_ranges.h"
#include "backend/lora_compose.h"
#include "runtime/check_cuda.h"
#include "runtime/error.h"

namespace mira {

namespace {

template <typename T>
T* P(const DSpan<T>& s) { return BackendAccess::ptr(s); }

// A failed kernel launcher: the statement, the failing step and the library's error text.
void check_status(const CudaStatus& st, const char* call, const char* file, int line) {
  if (st.ok()) return;
  const std::string stmt = std::string(call) + " [" + st.step + "]";
  if (st.cuda != cudaSuccess)
    throw_check_failure("CUDA", stmt.c_str(),
                        std::string(cudaGetErrorName(st.cuda)) + " (" + std::to_string((int)st.cuda) +
                            "): " + cudaGetErrorString(st.cuda),
                        file, line);
  throw_check_failure("cuBLAS", stmt.c_str(), cublasGetStatusString(st.cublas), file, line);
}
#define MIRA_CHECK_OP(call) check_status((call), #call, __FILE__, __LINE__)

// cuBLAS takes int dimensions; the model's shapes are far below, but never truncate silently.
void check_int(int64_t v, const char* what) {
  MIRA_CHECK(v >= 0 && v <= INT_MAX, std::string("cuda backend: ") + what + " = " + std::to_string(v) +
                                         " does not fit cuBLAS's int");
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    MIRA_CHECK_CUDA(cudaSetDevice(device));
    MIRA_CHECK_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    MIRA_CHECK_CUBLAS(cublasCreate(&blas_));
    MIRA_CHECK_CUBLAS(cublasSetStream(blas_, stream_));
    // Parity mode: plain fp32 everywhere (no TF32 tensor cores, no reduced-precision reductions).
    MIRA_CHECK_CUBLAS(cublasSetMathMode(blas_, CUBLAS_PEDANTIC_MATH));
    // The bf16 frozen-weight GEMMs (cuda_gemm_bf16): a second handle on the same stream in the
    // default math mode, so cuBLAS may pick tensor-core kernels (bf16 inputs, fp32 accumulation).
    MIRA_CHECK_CUBLAS(cublasCreate(&blas16_));
    MIRA_CHECK_CUBLAS(cublasSetStream(blas16_, stream_));
    MIRA_CHECK_CUBLAS(cublasSetMathMode(blas16_, CUBLAS_DEFAULT_MATH));
    MIRA_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&sum_out_), sizeof(double)));
    const char* epi = std::getenv("MIRA_CUDA_EPILOGUES");  // 0: the composed bias path (A/B timing)
    use_epilogues_ = !(epi && std::strcmp(epi, "0") == 0);
  }
  ~CudaBackend() override {
    // No throwing from a destructor: errors here (e.g. a device already lost) are ignored.
    cudaSetDevice(device_);
    if (stream_) cudaStreamSynchronize(stream_);
    for (auto& kv : blocks_) cudaFree(kv.first);
    cudaFree(ws_);
    cudaFree(rows_);
    cudaFree(sum_out_);
    for (const FrozenRanges::Range& r : frozen_.all()) cudaFree(r.copy);
    cudaFree(ws16_);
    for (float* p : act_buf_) cudaFree(p);
    cuda_gemm_lt_destroy(lt_);
    if (blas16_) cublasDestroy(blas16_);
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  std::string name() const override { return "cuda"; }

  DFloat alloc_f32(int64_t n) override { return BackendAccess::make(static_cast<float*>(raw_alloc(n * 4)), n); }
  DInt alloc_i32(int64_t n) override { return BackendAccess::make(static_cast<int32_t*>(raw_alloc(n * 4)), n); }
  DBf16 alloc_bf16(int64_t n) override { return BackendAccess::make(static_cast<Bf16*>(raw_alloc(n * 2)), n); }
  void release(DFloat s) override { raw_free(P(s)); }
  void release(DInt s) override { raw_free(P(s)); }
  void release(DBf16 s) override { raw_free(P(s)); }
  void upload(DBf16 dst, const uint16_t* host) override { copy_sync(P(dst), host, bytes(dst), cudaMemcpyHostToDevice); }
  void download(uint16_t* host, DBf16 src) override { copy_sync(host, P(src), bytes(src), cudaMemcpyDeviceToHost); }
  // Host -> device copies wait for completion: the caller may reuse (or free) the host buffer at
  // once even if it is pinned memory, for which cudaMemcpyAsync would return before reading it.
  void upload(DFloat dst, const float* host) override {
    check_writable(dst, "upload");
    copy_sync(P(dst), host, bytes(dst), cudaMemcpyHostToDevice);
  }
  void upload(DInt dst, const int32_t* host) override { copy_sync(P(dst), host, bytes(dst), cudaMemcpyHostToDevice); }
  void download(float* host, DFloat src) override { copy_sync(host, P(src), bytes(src), cudaMemcpyDeviceToHost); }
  void copy(DFloat dst, DFloat src) override {
    MIRA_CHECK(dst.size() == src.size(), "copy size mismatch");
    if (dst.empty() || P(dst) == P(src)) return;
    check_writable(dst, "copy");
    // The CPU backend uses memmove; cudaMemcpy is undefined for overlapping ranges, so refuse them.
    MIRA_CHECK(P(dst) + dst.size() <= P(src) || P(src) + src.size() <= P(dst),
               "cuda backend: copy between overlapping ranges is not supported");
    MIRA_CHECK_CUDA(cudaMemcpyAsync(P(dst), P(src), bytes(dst), cudaMemcpyDeviceToDevice, stream_));
  }
  void zero(DFloat dst) override {
    check_writable(dst, "zero");
    if (!dst.empty()) MIRA_CHECK_CUDA(cudaMemsetAsync(P(dst), 0, bytes(dst), stream_));
  }

  void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, DFloat a, int64_t lda, DFloat b,
            int64_t ldb, float beta, DFloat c, int64_t ldc) override {
    check_int(m, "m"), check_int(n, "n"), check_int(k, "k");
    check_int(lda, "lda"), check_int(ldb, "ldb"), check_int(ldc, "ldc");
    if (!frozen_.empty()) {  // fp32 mode (nothing frozen) pays this one test
      const FrozenRanges::Range* fa = frozen_.find(P(a), a.size());
      const FrozenRanges::Range* fb = frozen_.find(P(b), b.size());
      if (fa || fb) {
        check_writable(c, "gemm output");
        gemm_bf16(ta, tb, m, n, k, alpha, a, lda, fa, b, ldb, fb, beta, c, ldc);
        return;
      }
    }
    if (cuda_skinny_gemm_applies(ta, tb, m, n, k)) {  // the LoRA products (kernels/cuda/skinny_gemm.h)
      const int64_t need = cuda_skinny_gemm_scratch(ta, tb, m, n, k);
      MIRA_CHECK_OP(cuda_skinny_gemm(stream_, ta, tb, m, n, k, alpha, P(a), lda, P(b), ldb, beta, P(c), ldc,
                                     need > 0 ? workspace(need) : nullptr));
      return;
    }
    MIRA_CHECK_OP(cuda_gemm(blas_, ta, tb, m, n, k, alpha, P(a), lda, P(b), ldb, beta, P(c), ldc));
  }
  // A bf16 y is stored by the kernel itself (each value rounded once, no fp32 copy).
  void layernorm_forward(DAct y, DFloat mean, DFloat rstd, DFloat x, DFloat w, DFloat b, int64_t n, int64_t c,
                         double eps) override {
    check_act(y, n * c, "layernorm_forward output");
    if (y.is_bf16())
      MIRA_CHECK_OP(cuda_layernorm_forward(stream_, H(y), P(mean), P(rstd), P(x), P(w), P(b), n, c, eps));
    else
      MIRA_CHECK_OP(cuda_layernorm_forward(stream_, P(y.f32()), P(mean), P(rstd), P(x), P(w), P(b), n, c, eps));
  }
  void residual_layernorm_forward(DFloat sum, DAct y, DFloat mean, DFloat rstd, DFloat a, DFloat r, DFloat w,
                                  DFloat b, int64_t n, int64_t c, double eps) override {
    check_act(y, n * c, "residual_layernorm_forward output");
    if (y.is_bf16())
      MIRA_CHECK_OP(cuda_residual_layernorm_forward(stream_, P(sum), H(y), P(mean), P(rstd), P(a), P(r), P(w), P(b),
                                                    n, c, eps));
    else
      MIRA_CHECK_OP(cuda_residual_layernorm_forward(stream_, P(sum), P(y.f32()), P(mean), P(rstd), P(a), P(r), P(w),
                                                    P(b), n, c, eps));
  }
  void layernorm_backward(DFloat dx, DFloat dw, DFloat db, DFloat dy, DFloat x, DFloat w, DFloat mean, DFloat rstd,
                          int64_t n, int64_t c) override {
    float* pdw = dw.empty() ? nullptr : P(dw);
    float* pdb = db.empty() ? nullptr : P(db);
    float* ws = (pdw || pdb) ? workspace(cuda_layernorm_backward_scratch(n, c)) : nullptr;
    MIRA_CHECK_OP(cuda_layernorm_backward(stream_, P(dx), pdw, pdb, P(dy), P(x), P(w), P(mean), P(rstd), n, c, ws));
  }
  // bf16 activations are read and stored by the kernels themselves (kernels/cuda/gelu.h).
  void gelu_forward(DAct y, DAct x, int64_t n) override {
    check_act(y, n, "gelu_forward output"), check_act(x, n, "gelu_forward input");
    if (y.is_bf16() && x.is_bf16()) MIRA_CHECK_OP(cuda_gelu_forward(stream_, H(y), H(x), n));
    else if (y.is_bf16()) MIRA_CHECK_OP(cuda_gelu_forward(stream_, H(y), P(x.f32()), n));
    else if (x.is_bf16()) MIRA_CHECK_OP(cuda_gelu_forward(stream_, P(y.f32()), H(x), n));
    else MIRA_CHECK_OP(cuda_gelu_forward(stream_, P(y.f32()), P(x.f32()), n));
  }
  void gelu_backward(DFloat dx, DFloat dy, DAct x, int64_t n) override {
    check_act(x, n, "gelu_backward input");
    if (x.is_bf16()) MIRA_CHECK_OP(cuda_gelu_backward(stream_, P(dx), P(dy), H(x), n));
    else MIRA_CHECK_OP(cuda_gelu_backward(stream_, P(dx), P(dy), P(x.f32()), n));
  }
  // Flash-style kernels (kernels/cuda/attention.h): att = row logsumexp (B, H, T); scratch =
  // rowsum(dout * out) (B, H, T), used by the backward only (which reads out). prec FP32: the fp32
  // kernels (attention.cu), whose backward reads qkv; BF16: the tensor-core kernels
  // (attention_bf16.cu), which keep q, k, v as padded bf16 heads in att (half of qkv's bytes) and
  // do not read qkv in the backward; dout's bf16 heads go to the bf16 workspace.
  int64_t attention_saved_floats(int64_t b, int64_t t, int64_t c, int64_t nh, AttentionPrecision prec) const override {
    return cuda_attention_saved_floats(b, t, c, nh, prec == AttentionPrecision::BF16);
  }
  bool attention_backward_reads_qkv(AttentionPrecision prec) const override { return prec != AttentionPrecision::BF16; }
  int64_t attention_scratch_floats(int64_t b, int64_t t, int64_t c, int64_t nh) const override {
    return cuda_attention_scratch_floats(b, t, c, nh);
  }
  void attention_forward(DAct out_act, DFloat att, DFloat qkv, int64_t b, int64_t t, int64_t c, int64_t nh,
                         DFloat scratch, const DropoutSite& drop, AttentionPrecision prec) override {
    const bool bf16 = prec == AttentionPrecision::BF16;
    check_act(out_act, b * t * c, "attention_forward: out");
    if (bf16 && out_act.is_bf16()) {  // the tensor-core kernel stores the bf16 out itself
      check_attention(out_act, att, qkv, b, t, c, nh, bf16);
      MIRA_CHECK_OP(cuda_attention_forward(stream_, H(out_act), P(att), P(qkv), b, t, c, nh, site(drop)));
      return;
    }
    const DFloat out = act_out_span(out_act, b * t * c);
    check_attention(out, att, qkv, b, t, c, nh, bf16);
    MIRA_CHECK_OP(cuda_attention_forward(stream_, P(out), P(att), P(qkv), b, t, c, nh, site(drop), bf16));
    act_out_done(out_act, P(out), b * t * c);
  }
  void attention_backward(DFloat dqkv, DFloat scratch, DFloat dout, DFloat qkv, DAct out_act, DFloat att, int64_t b,
                          int64_t t, int64_t c, int64_t nh, const DropoutSite& drop, AttentionPrecision prec) override {
    const bool bf16 = prec == AttentionPrecision::BF16;
    check_attention(dout, att, qkv, b, t, c, nh, bf16);
    MIRA_CHECK(out_act.size() >= b * t * c, "attention_backward: out smaller than (B, T, C)");
    MIRA_CHECK(dqkv.size() >= b * t * 3 * c, "attention_backward: dqkv smaller than (B, T, 3C)");
    MIRA_CHECK(scratch.size() >= cuda_attention_scratch_floats(b, t, c, nh),
               "attention_backward: scratch smaller than attention_scratch_floats");
    if (bf16 && out_act.is_bf16()) {  // the row-dot kernel reads the bf16 out itself
      MIRA_CHECK_OP(cuda_attention_backward(stream_, P(dqkv), P(scratch), P(dout), H(out_act), P(att), b, t, c, nh,
                                            site(drop), bf16_workspace(cuda_attention_bf16_workspace(b, t, c, nh))));
      return;
    }
    const DFloat out = act_in_span(out_act, 0, b * t * c);
    MIRA_CHECK_OP(cuda_attention_backward(stream_, P(dqkv), P(scratch), P(dout), P(qkv), P(out), P(att), b, t, c, nh,
                                          site(drop), bf16,
                                          bf16 ? bf16_workspace(cuda_attention_bf16_workspace(b, t, c, nh)) : nullptr));
  }
  void embedding_forward(DFloat out, DInt ids, DFloat wte, DFloat wpe, int64_t b, int64_t t, int64_t c) override {
    MIRA_CHECK_OP(cuda_embedding_forward(stream_, P(out), P(ids), P(wte), P(wpe), b, t, c));
  }
  void bias_broadcast(DFloat y, DFloat bias, int64_t n, int64_t m) override {
    MIRA_CHECK_OP(cuda_bias_broadcast(stream_, P(y), P(bias), n, m));
  }
  // fp32 weights: the interface's three steps (bias, base GEMM with beta 1, LoRA term), or y = bias +
  // s u B^T in one write (the rank-update kernel) before the base GEMM. Weights frozen in bf16 (the
  // default on a GPU): x in bf16 - read in place when the activation is stored in bf16, else converted
  // into the bf16 workspace - and W's bf16 copy; without a LoRA term the bias goes into cuBLASLt's
  // epilogue (kernels/cuda/gemm_lt.h: y written once), else the same steps as fp32 on the bf16 GEMM.
  // A bf16 y is computed in fp32 scratch and rounded into place.
  void linear_forward(DAct y_act, DAct x_act, DFloat w, DFloat bias, DFloat u, DFloat bl, float lora_scale, int64_t n,
                      int64_t in, int64_t out, int64_t r) override {
    check_int(n, "n"), check_int(in, "in"), check_int(out, "out");
    check_act(x_act, n * in, "linear_forward input");
    check_act(y_act, n * out, "linear_forward output");
    MIRA_CHECK(w.size() >= in * out && bias.size() >= out, "linear_forward: w or bias smaller than the shape");
    const FrozenRanges::Range* fw = frozen_.empty() ? nullptr : frozen_.find(P(w), w.size());
    const DFloat y = act_out_span(y_act, n * out);
    check_writable(y, "linear_forward output");
    const bool fused_bias = !u.empty() && cuda_rank_update_bias_applies(n, out, r);
    if (fused_bias)  // y = bias + s u B^T (kernels/cuda/skinny_gemm.h); the base GEMM adds x W below
      MIRA_CHECK_OP(cuda_rank_update_bias(stream_, true, n, out, r, lora_scale, P(u), r, P(bl), r, P(bias), P(y), out));
    if (!fw) {
      const DFloat x = act_in_span(x_act, 0, n * in);
      if (!fused_bias) bias_broadcast(y, bias, n, out);
      gemm(false, false, n, out, in, 1.0f, x, in, w, out, 1.0f, y, out);
      if (!u.empty() && !fused_bias) gemm(false, true, n, out, r, lora_scale, u, r, bl, r, 1.0f, y, out);
    } else if (n > 0 && out > 0) {
      const __nv_bfloat16* x16 = x_act.is_bf16() ? H(x_act) : nullptr;
      if (!x16) {
        __nv_bfloat16* ws = bf16_workspace(n * in);
        MIRA_CHECK_OP(cuda_convert_bf16_2d(stream_, ws, P(x_act.f32()), n, in, in));
        x16 = ws;
      }
      const __nv_bfloat16* w16 = bf16_at(*fw, P(w));
      CudaStatus st = cuda_status_blas(CUBLAS_STATUS_NOT_SUPPORTED, "");
      if (u.empty() && use_epilogues_)
        st = cuda_gemm_bf16_bias(lt(), stream_, n, out, in, x16, in, w16, out, P(bias), P(y), out);
      if (st.cublas != CUBLAS_STATUS_NOT_SUPPORTED) {
        MIRA_CHECK_OP(st);
      } else {  // no epilogue kernel for this shape (or a LoRA term): bias first, GEMM with beta 1
        if (!fused_bias) bias_broadcast(y, bias, n, out);
        MIRA_CHECK_OP(cuda_gemm_bf16(blas16_, false, false, n, out, in, 1.0f, x16, in, w16, out, 1.0f, P(y), out));
        if (!u.empty() && !fused_bias) gemm(false, true, n, out, r, lora_scale, u, r, bl, r, 1.0f, y, out);
      }
    }
    act_out_done(y_act, P(y), n * out);
  }
  void add(DFloat y, DFloat a, DFloat b) override { MIRA_CHECK_OP(cuda_add(stream_, P(y), P(a), P(b), y.size())); }
  void scale(DFloat y, float s) override {
    check_writable(y, "scale");
    MIRA_CHECK_OP(cuda_scale(stream_, P(y), y.size(), s));
  }
  void dropout(DFloat y, DFloat x, float p, uint64_t stream, uint64_t base, bool accumulate) override {
    MIRA_CHECK_OP(
        cuda_dropout(stream_, P(y), P(x), y.size(), p, dropout_threshold(p), stream, base, accumulate));
  }
  void dropout_mask(DInt bits, int64_t n, float p, uint64_t stream, uint64_t base) override {
    MIRA_CHECK(bits.size() >= dropout_mask_words(n), "dropout_mask: fewer than dropout_mask_words(n) words");
    MIRA_CHECK_OP(cuda_dropout_mask(stream_, mask_bits(bits), n, dropout_threshold(p), stream, base));
  }
  // The LoRA products with the packed dropout mask read inside the skinny kernels (SkinnyMask,
  // kernels/cuda/skinny_gemm.h): no dropped-out copy of the input, no product buffer for the input
  // gradient. Shapes the skinny kernels do not take (and frozen-bf16 operands, which LoRA products
  // never have) run the definition (backend/lora_compose.h) with the masked input in the workspace.
  void lora_down(DFloat u, DAct x_act, DFloat a, const DropoutMask& mask, int64_t n, int64_t in, int64_t r) override {
    check_act(x_act, n * in, "lora_down input");
    const SkinnyMask sm = skinny_mask(mask, SkinnyMask::A);
    const SkinnyBf16 in16{x_act.is_bf16() ? H(x_act) : nullptr, nullptr};
    if (skinny_direct(sm, in16, false, true, n, r, in, mask, n * in, a)) {
      MIRA_CHECK_OP(cuda_skinny_gemm(stream_, false, true, n, r, in, 1.0f, fp32_or_null(x_act), in, P(a), in, 0.0f,
                                     P(u), r, nullptr, sm, in16));
      return;
    }
    lora_down_composed(*this, u, act_in_span(x_act, 0, n * in), a, mask, n, in, r, lora_scratch_, apply_mask(mask));
  }
  void lora_down_grad(DFloat ga, DFloat du, DAct x_act, const DropoutMask& mask, int64_t n, int64_t in,
                      int64_t r) override {
    check_act(x_act, n * in, "lora_down_grad input");
    const SkinnyMask sm = skinny_mask(mask, SkinnyMask::B);
    const SkinnyBf16 in16{nullptr, x_act.is_bf16() ? H(x_act) : nullptr};
    if (skinny_direct(sm, in16, true, false, r, in, n, mask, n * in, du)) {
      const int64_t need = cuda_skinny_gemm_scratch(true, false, r, in, n);
      MIRA_CHECK_OP(cuda_skinny_gemm(stream_, true, false, r, in, n, 1.0f, P(du), r, fp32_or_null(x_act), in, 0.0f,
                                     P(ga), in, need > 0 ? workspace(need) : nullptr, sm, in16));
      return;
    }
    lora_down_grad_composed(*this, ga, du, act_in_span(x_act, 0, n * in), mask, n, in, r, lora_scratch_,
                            apply_mask(mask));
  }
  void lora_input_grad(DFloat dx, DFloat du, DFloat a, const DropoutMask& mask, int64_t n, int64_t in,
                       int64_t r) override {
    const SkinnyMask sm = skinny_mask(mask, SkinnyMask::ACCUMULATE);
    if (skinny_direct(sm, SkinnyBf16{}, false, false, n, in, r, mask, n * in, a)) {
      check_writable(dx, "lora_input_grad output");
      MIRA_CHECK_OP(cuda_skinny_gemm(stream_, false, false, n, in, r, 1.0f, P(du), r, P(a), in, 1.0f, P(dx), in,
                                     nullptr, sm));
      return;
    }
    lora_input_grad_composed(*this, dx, du, a, mask, n, in, r, lora_scratch_, apply_mask(mask));
  }
  int64_t lm_head_ce_scratch(int64_t c, int64_t v) const override { return cuda_lm_head_ce_scratch(c, v); }
  void lm_head_ce(DFloat loss_rows, DFloat dh, DFloat dwte, DFloat h, DFloat wte, DInt targets, DFloat weight, int64_t n,
                  int64_t c, int64_t v, DFloat scratch) override {
    check_int(n, "rows"), check_int(v, "vocabulary"), check_int(c, "C");
    MIRA_CHECK(scratch.size() >= cuda_lm_head_ce_scratch(c, v), "lm_head_ce: scratch smaller than lm_head_ce_scratch");
    // The active rows (weight != 0) are listed on the host, as the CPU kernel does: one (N) float
    // download per call (a few KB; the loss weights live on the device).
    host_weight_.resize((size_t)n);
    copy_sync(host_weight_.data(), P(weight), sizeof(float) * (size_t)n, cudaMemcpyDeviceToHost);
    host_rows_.clear();
    for (int64_t i = 0; i < n; ++i)
      if (host_weight_[(size_t)i] != 0.0f) host_rows_.push_back((int32_t)i);
    const int64_t n_active = (int64_t)host_rows_.size();
    int32_t* rows = row_buffer(std::max<int64_t>(1, n_active));
    if (n_active > 0)
      copy_sync(rows, host_rows_.data(), sizeof(int32_t) * (size_t)n_active, cudaMemcpyHostToDevice);
    if (!frozen_.empty()) {
      if (const FrozenRanges::Range* fw = frozen_.find(P(wte), wte.size())) {  // the bf16 mode (backend.h)
        MIRA_CHECK(dwte.empty(), "lm_head_ce: a gradient for a frozen wte was requested");
        MIRA_CHECK_OP(cuda_lm_head_ce_bf16(blas16_, stream_, P(loss_rows), dh.empty() ? nullptr : P(dh), P(h),
                                           bf16_at(*fw, P(wte)), P(targets), P(weight), rows, n_active, n, c, v,
                                           P(scratch), bf16_workspace(cuda_lm_head_ce_bf16_scratch(c, v))));
        return;
      }
    }
    MIRA_CHECK_OP(cuda_lm_head_ce(blas_, stream_, P(loss_rows), dh.empty() ? nullptr : P(dh),
                                  dwte.empty() ? nullptr : P(dwte), P(h), P(wte), P(targets), P(weight), rows,
                                  n_active, n, c, v, P(scratch)));
  }
  void embedding_backward(DFloat dwte, DFloat dwpe, DFloat dout, DInt ids, int64_t b, int64_t t, int64_t c) override {
    MIRA_CHECK_OP(cuda_embedding_backward(stream_, P(dwte), P(dwpe), P(dout), P(ids), b, t, c));
  }
  void colsum_accumulate(DFloat db, DFloat dy, int64_t n, int64_t m) override {
    MIRA_CHECK_OP(cuda_colsum_accumulate(stream_, P(db), P(dy), n, m));
  }
  void adam_step(DFloat param, DFloat grad, DFloat m, DFloat v, double lr, double beta1, double beta2, double eps,
                 double weight_decay, bool decoupled, double bc1, double bc2) override {
    check_writable(param, "adam_step");
    MIRA_CHECK_OP(cuda_adam_step(stream_, P(param), P(grad), P(m), P(v), param.size(), lr, beta1, beta2, eps,
                                 weight_decay, decoupled, bc1, bc2));
  }
  double sum_squares(DFloat x) override { return reduce(x, true); }
  double sum(DFloat x) override { return reduce(x, false); }

  // The bf16 mode (backend.h): a bf16 copy of w in its own cudaMalloc (one per frozen tensor, made
  // once at set-up and freed with the allocation holding w), and w's fp32 storage rounded in place
  // so that the ops reading it in fp32 (embeddings, downloads) see the same values as the CPU oracle.
  // The fp32 storage is kept: w is usually a slice of the model's one weight buffer, which cannot be
  // freed in parts, and the model still downloads it (base_model_host).
  void freeze_weights(DFloat w, WeightPrecision p) override {
    if (p != WeightPrecision::BF16 || w.empty() || frozen_.contains_exactly(P(w), w.size())) return;
    MIRA_CHECK(!frozen_.overlaps(P(w), w.size()), "freeze_weights: the range overlaps a range frozen earlier");
    void* copy = nullptr;
    MIRA_CHECK_CUDA(cudaMalloc(&copy, sizeof(__nv_bfloat16) * (size_t)w.size()));
    frozen_.insert(P(w), w.size(), copy);  // recorded first: freed by release() or the destructor
    MIRA_CHECK_OP(cuda_freeze_bf16(stream_, P(w), static_cast<__nv_bfloat16*>(copy), w.size()));
  }

 private:
  // Writes into frozen weights are refused (the bf16 copy would no longer match).
  void check_writable(const DFloat& s, const char* op) const {
    if (!frozen_.empty())
      MIRA_CHECK(!frozen_.overlaps(P(s), s.size()), std::string("cuda backend: ") + op + " writes into a frozen weight");
  }
  // The bf16 copy of the frozen element p (inside range r).
  static const __nv_bfloat16* bf16_at(const FrozenRanges::Range& r, const float* p) {
    return static_cast<const __nv_bfloat16*>(r.copy) + (p - r.begin);
  }
  // C = alpha op(bf16(A)) op(bf16(B)) + beta C on the bf16 path: a frozen operand is read from its
  // bf16 copy (offset for a slice, same leading dimension), the other one is converted into the bf16
  // workspace densely (leading dimension = its stored width).
  void gemm_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, DFloat a, int64_t lda,
                 const FrozenRanges::Range* fa, DFloat b, int64_t ldb, const FrozenRanges::Range* fb, float beta,
                 DFloat c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k;  // as stored
    const int64_t b_rows = tb ? n : k, b_cols = tb ? k : n;
    __nv_bfloat16* ws = bf16_workspace((fa ? 0 : a_rows * a_cols) + (fb ? 0 : b_rows * b_cols));
    const __nv_bfloat16 *a16 = nullptr, *b16 = nullptr;
    if (fa) {
      a16 = bf16_at(*fa, P(a));
    } else {
      MIRA_CHECK_OP(cuda_convert_bf16_2d(stream_, ws, P(a), a_rows, a_cols, lda));
      a16 = ws, lda = std::max<int64_t>(a_cols, 1), ws += a_rows * a_cols;
    }
    if (fb) {
      b16 = bf16_at(*fb, P(b));
    } else {
      MIRA_CHECK_OP(cuda_convert_bf16_2d(stream_, ws, P(b), b_rows, b_cols, ldb));
      b16 = ws, ldb = std::max<int64_t>(b_cols, 1);
    }
    MIRA_CHECK_OP(cuda_gemm_bf16(blas16_, ta, tb, m, n, k, alpha, a16, lda, b16, ldb, beta, P(c), ldc));
  }
  CudaGemmLt* lt() {  // made on first use: fp32 runs never allocate its workspace
    if (!lt_) MIRA_CHECK_OP(cuda_gemm_lt_create(&lt_, size_t(32) << 20));
    return lt_;
  }

  // Activations in bf16 storage (backend.h, DAct). Ops whose kernels read or write bf16 themselves
  // take H(a); the others go through fp32 scratch: an input's first n values widened into slot i
  // (exact), an output computed into the output slot and rounded into place by act_out_done (only
  // the n values the op wrote). fp32 activations are used as they are.
  static __nv_bfloat16* H(const DAct& a) { return reinterpret_cast<__nv_bfloat16*>(P(a.bf16())); }
  static void check_act(const DAct& a, int64_t n, const char* what) {
    MIRA_CHECK(a.size() >= n, std::string("cuda backend: ") + what + " smaller than the op's shape");
  }
  DFloat act_in_span(const DAct& a, int i, int64_t n) {
    if (!a.is_bf16()) return a.f32();
    check_act(a, n, "bf16 activation");
    float* p = act_scratch(i, n);
    MIRA_CHECK_OP(cuda_widen_bf16(stream_, p, H(a), n));
    return BackendAccess::make(p, n);
  }
  DFloat act_out_span(const DAct& a, int64_t n) {
    if (!a.is_bf16()) return a.f32();
    check_act(a, n, "bf16 activation");
    return BackendAccess::make(act_scratch(ACT_OUT, n), n);
  }
  void act_out_done(const DAct& a, const float* tmp, int64_t n) {
    if (a.is_bf16() && n > 0) MIRA_CHECK_OP(cuda_convert_bf16_2d(stream_, H(a), tmp, 1, n, n));
  }
  static constexpr int ACT_OUT = 2;
  float* act_scratch(int i, int64_t n) {  // grown on demand and kept, like workspace()
    if (n > act_size_[i]) {
      MIRA_CHECK_CUDA(cudaStreamSynchronize(stream_));
      MIRA_CHECK_CUDA(cudaFree(act_buf_[i]));
      act_buf_[i] = nullptr;
      MIRA_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&act_buf_[i]), sizeof(float) * (size_t)n));
      act_size_[i] = n;
    }
    return act_buf_[i];
  }

  // The LoRA ops' helpers: the mask's words; whether the skinny kernel of this product shape takes the
  // mask (fp32 operands: adapters are never frozen; the mask covers the input's `elems` elements).
  static uint32_t* mask_bits(DInt bits) { return reinterpret_cast<uint32_t*>(P(bits)); }
  static SkinnyMask skinny_mask(const DropoutMask& mask, SkinnyMask::Where where) {
    if (mask.bits.empty()) return SkinnyMask{};
    return SkinnyMask{mask_bits(mask.bits), 1.0f / (1.0f - mask.p), where};  // keep scale as cuda_dropout
  }
  static const float* fp32_or_null(const DAct& x) { return x.is_bf16() ? nullptr : P(x.f32()); }
  // Whether a LoRA op (lora_down, lora_down_grad, lora_input_grad) runs as one skinny kernel: there
  // is a mask or a bf16 input to fuse (else the plain composition is the same kernel anyway), the
  // shape's kernel takes both, and the adapter operand is not frozen (it never is).
  bool skinny_direct(const SkinnyMask& sm, const SkinnyBf16& in16, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                     const DropoutMask& mask, int64_t elems, DFloat adapter) const {
    if (!sm.bits && !in16.a && !in16.b) return false;
    if (sm.bits) MIRA_CHECK(mask.bits.size() >= dropout_mask_words(elems), "lora op: dropout mask smaller than the input");
    if (!frozen_.empty() && frozen_.find(P(adapter), adapter.size())) return false;
    return cuda_skinny_gemm_applies(ta, tb, m, n, k) && (!sm.bits || cuda_skinny_gemm_takes_mask(sm, ta, tb, m, n, k)) &&
           cuda_skinny_gemm_takes_bf16(in16, ta, tb, m, n, k);
  }
  ApplyMask apply_mask(const DropoutMask& mask) {
    return [this, &mask](DFloat y, DFloat x, bool accumulate) {
      MIRA_CHECK_OP(cuda_dropout_apply_mask(stream_, P(y), P(x), mask_bits(mask.bits), x.size(),
                                            1.0f / (1.0f - mask.p), accumulate));
    };
  }

  // bf16 scratch of the bf16 mode (converted operands, the LM head's bf16 chunk buffers), grown on
  // demand and kept, like workspace(): no allocation in the step loop after the first step.
  __nv_bfloat16* bf16_workspace(int64_t elems) {
    if (elems > ws16_size_) {
      MIRA_CHECK_CUDA(cudaStreamSynchronize(stream_));
      MIRA_CHECK_CUDA(cudaFree(ws16_));
      ws16_ = nullptr;
      MIRA_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&ws16_), sizeof(__nv_bfloat16) * (size_t)elems));
      ws16_size_ = elems;
    }
    return ws16_;
  }

  template <typename T>
  static size_t bytes(const DSpan<T>& s) { return sizeof(T) * (size_t)s.size(); }

  // Shapes and sizes of an attention call (x: out or dout (B, T, C)); the kernels support head dims
  // up to CUDA_ATTENTION_MAX_HEAD_DIM.
  static void check_attention(DAct x, DFloat att, DFloat qkv, int64_t b, int64_t t, int64_t c, int64_t nh,
                              bool bf16) {
    MIRA_CHECK(b >= 0 && t >= 0 && nh > 0 && c > 0 && c % nh == 0,
               "attention: C = " + std::to_string(c) + " is not a positive multiple of H = " + std::to_string(nh));
    MIRA_CHECK(c / nh <= CUDA_ATTENTION_MAX_HEAD_DIM,
               "cuda backend: attention head dim " + std::to_string(c / nh) + " exceeds the kernels' maximum " +
                   std::to_string(CUDA_ATTENTION_MAX_HEAD_DIM));
    MIRA_CHECK(x.size() >= b * t * c && qkv.size() >= b * t * 3 * c, "attention: out/dout or qkv too small");
    MIRA_CHECK(att.size() >= cuda_attention_saved_floats(b, t, c, nh, bf16),
               "attention: att smaller than attention_saved_floats");  // alignment: the launchers check it
  }

  static CudaDropout site(const DropoutSite& d) {
    CudaDropout k;
    k.p = d.p;
    k.threshold = dropout_threshold(d.p);
    k.stream = d.stream;
    k.base = d.base;
    return k;
  }

  void copy_sync(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
    if (n == 0) return;
    MIRA_CHECK_CUDA(cudaMemcpyAsync(dst, src, n, kind, stream_));
    MIRA_CHECK_CUDA(cudaStreamSynchronize(stream_));  // also reports faults of earlier async kernels
  }

  double reduce(DFloat x, bool squares) {
    double* partials = reinterpret_cast<double*>(workspace(2 * cuda_reduce_partials(x.size())));  // 2 floats/double
    MIRA_CHECK_OP(cuda_sum(stream_, sum_out_, partials, P(x), x.size(), squares));
    double r = 0;
    copy_sync(&r, sum_out_, sizeof(double), cudaMemcpyDeviceToHost);
    return r;
  }

  void* raw_alloc(int64_t bytes) {
    MIRA_CHECK(bytes >= 0, "cuda backend: negative allocation");
    // 256 B minimum: distinct non-null pointers for empty tensors, as the CPU backend gives.
    const size_t sz = (size_t)std::max<int64_t>(bytes, 256);
    void* p = nullptr;
    const cudaError_t rc = cudaMalloc(&p, sz);
    if (rc == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it
      throw InternalError("cuda backend: out of device memory allocating " + std::to_string(bytes) + " bytes on device " +
                          std::to_string(device_));
    }
    MIRA_CHECK_CUDA(rc);
    MIRA_CHECK_CUDA(cudaMemsetAsync(p, 0, sz, stream_));  // zero-filled, ordered before any use on the stream
    blocks_[p] = sz;
    return p;
  }
  void raw_free(void* p) {
    if (!p) return;
    auto it = blocks_.find(p);
    MIRA_CHECK(it != blocks_.end(), "release of memory this backend does not own");
    MIRA_CHECK_CUDA(cudaStreamSynchronize(stream_));  // kernels still using it have finished
    if (!frozen_.empty())  // bf16 copies of weights inside the block end with it
      for (const FrozenRanges::Range& r : frozen_.remove_block(p, static_cast<const char*>(p) + it->second))
        MIRA_CHECK_CUDA(cudaFree(r.copy));
    MIRA_CHECK_CUDA(cudaFree(p));
    blocks_.erase(it);
  }

  // Internal scratch (layernorm parameter partials, reduction partials), grown on demand and kept:
  // after the first step of a shape no allocation happens in the step loop.
  float* workspace(int64_t floats) {
    if (floats > ws_size_) {
      MIRA_CHECK_CUDA(cudaStreamSynchronize(stream_));
      MIRA_CHECK_CUDA(cudaFree(ws_));
      ws_ = nullptr;
      MIRA_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&ws_), sizeof(float) * (size_t)floats));
      ws_size_ = floats;
    }
    return ws_;
  }
  int32_t* row_buffer(int64_t n) {
    if (n > rows_size_) {
      MIRA_CHECK_CUDA(cudaStreamSynchronize(stream_));
      MIRA_CHECK_CUDA(cudaFree(rows_));
      rows_ = nullptr;
      MIRA_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&rows_), sizeof(int32_t) * (size_t)n));
      rows_size_ = n;
    }
    return rows_;
  }

  int device_ = 0;
  cudaStream_t stream_ = nullptr;

 public:
  cudaStream_t stream() const { return stream_; }  // backend_cuda_stream

 private:
  cublasHandle_t blas_ = nullptr;
  std::map<void*, size_t> blocks_;
  float* ws_ = nullptr;  // (ws_size_) internal scratch
  int64_t ws_size_ = 0;
  int32_t* rows_ = nullptr;  // (rows_size_) active CE rows
  int64_t rows_size_ = 0;
  double* sum_out_ = nullptr;  // (1) result of sum / sum_squares
  std::vector<float> host_weight_;
  std::vector<int32_t> host_rows_;
  cublasHandle_t blas16_ = nullptr;      // bf16 GEMMs, CUBLAS_DEFAULT_MATH (tensor cores)
  FrozenRanges frozen_;                  // frozen-bf16 weights, payload = the bf16 copy (cudaMalloc)
  __nv_bfloat16* ws16_ = nullptr;        // (ws16_size_) bf16 scratch
  int64_t ws16_size_ = 0;
  LoraScratch lora_scratch_;             // the composed LoRA ops' buffer (a block of blocks_)
  CudaGemmLt* lt_ = nullptr;             // cuBLASLt (epilogue GEMMs), made on first use
  float* act_buf_[3] = {nullptr, nullptr, nullptr};  // fp32 scratch of bf16 activations (act_scratch)
  int64_t act_size_[3] = {0, 0, 0};
  bool use_epilogues_ = true;            // MIRA_CUDA_EPILOGUES=0 turns them off
};

}  // namespace

std::unique_ptr<Backend> backend_create_cuda(int device) { return std::make_unique<CudaBackend>(device); }

void* backend_cuda_stream(Backend& be) {
  auto* cuda = dynamic_cast<CudaBackend*>(&be);
  MIRA_CHECK(cuda != nullptr, "backend_cuda_stream: backend '" + be.name() + "' is not the CUDA backend");
  return cuda->stream();
}

}  // namespace mira
#endif  // MIRA_HAVE_CUDA
