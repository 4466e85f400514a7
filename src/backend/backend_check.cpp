// backend_check: every Backend op on a candidate and a reference backend, compared norm-wise (see
// backend_check.h). Inputs come from a fixed random stream, so a failure is reproducible.
#include "backend/backend_check.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>

#include "kernels/cpu/bf16.h"
#include "runtime/rng.h"

namespace mira {

bool BackendCheckReport::ok() const { return count_ok() == static_cast<int>(ops.size()); }

int BackendCheckReport::count_ok() const {
  int n = 0;
  for (const auto& o : ops) n += o.ok ? 1 : 0;
  return n;
}

std::string BackendCheckReport::failures() const {
  std::string out;
  for (const auto& o : ops) {
    if (o.ok) continue;
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s%s: relative error %.3g > %.1g", out.empty() ? "" : "; ", o.op.c_str(),
                  o.rel_error, tolerance);
    out += buf;
  }
  return out;
}

namespace {

// Buffers with the same contents on both backends, released when the checker ends.
struct Pair {
  DFloat cand, ref;
};
struct PairI {
  DInt cand, ref;
};
struct Pair16 {
  DBf16 cand, ref;
};

class Checker {
 public:
  Checker(Backend& cand, Backend& ref, double tol, BackendCheckReport& rep)
      : cand_(cand), ref_(ref), tol_(tol), rep_(rep), rng_(20240611, RngPurpose::BACKEND_CHECK) {}
  ~Checker() {
    for (auto& p : f_) cand_.release(p.cand), ref_.release(p.ref);
    for (auto& p : i_) cand_.release(p.cand), ref_.release(p.ref);
    for (auto& p : h_) cand_.release(p.cand), ref_.release(p.ref);
  }
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;

  std::vector<float> random(int64_t n, float lo = -1.0f, float hi = 1.0f) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = lo + (hi - lo) * rng_.uniform();
    return v;
  }
  Pair put(const std::vector<float>& h) {
    Pair p = zeros(static_cast<int64_t>(h.size()));
    cand_.upload(p.cand, h.data());
    ref_.upload(p.ref, h.data());
    return p;
  }
  Pair rand(int64_t n, float lo = -1.0f, float hi = 1.0f) { return put(random(n, lo, hi)); }
  Pair zeros(int64_t n) { return sized(n, n); }
  // Different sizes on the two sides (backend-defined scratch); never compared.
  Pair sized(int64_t n_cand, int64_t n_ref) {
    f_.push_back(Pair{cand_.alloc_f32(n_cand), ref_.alloc_f32(n_ref)});
    return f_.back();
  }
  PairI ints(const std::vector<int32_t>& h) {
    const auto n = static_cast<int64_t>(h.size());
    i_.push_back(PairI{cand_.alloc_i32(n), ref_.alloc_i32(n)});
    cand_.upload(i_.back().cand, h.data());
    ref_.upload(i_.back().ref, h.data());
    return i_.back();
  }

  // One entry of the report: the outputs' norm-wise relative error, pooled over `outs`.
  void compare(const std::string& op, std::initializer_list<Pair> outs) {
    double num = 0, den = 0;
    for (const Pair& p : outs) {
      std::vector<float> a(static_cast<size_t>(p.cand.size())), b(static_cast<size_t>(p.ref.size()));
      cand_.download(a.data(), p.cand);
      ref_.download(b.data(), p.ref);
      for (size_t i = 0; i < a.size(); ++i) {
        const double d = static_cast<double>(a[i]) - b[i];
        num += d * d;
        den += static_cast<double>(b[i]) * b[i];
      }
    }
    record(op, num, den);
  }
  // bf16 outputs (activations stored in bf16): the same norm-wise error of the values, against
  // kBf16StorageTolerance (backend_check.h).
  void compare16(const std::string& op, const Pair16& p) {
    std::vector<uint16_t> a(static_cast<size_t>(p.cand.size())), b(static_cast<size_t>(p.ref.size()));
    cand_.download(a.data(), p.cand);
    ref_.download(b.data(), p.ref);
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double va = bf16_value(a[i]), vb = bf16_value(b[i]);
      num += (va - vb) * (va - vb);
      den += vb * vb;
    }
    record(op, num, den, kBf16StorageTolerance);
  }
  Pair16 zeros16(int64_t n) {
    h_.push_back(Pair16{cand_.alloc_bf16(n), ref_.alloc_bf16(n)});
    return h_.back();
  }
  void compare_scalar(const std::string& op, double cand, double ref) {
    record(op, (cand - ref) * (cand - ref), ref * ref);
  }

  Backend& cand() { return cand_; }
  Backend& ref() { return ref_; }

 private:
  void record(const std::string& op, double num, double den, double tol = -1) {
    BackendCheckOp o;
    o.op = op;
    if (!std::isfinite(num) || !std::isfinite(den))
      o.rel_error = std::numeric_limits<double>::infinity();
    else
      o.rel_error = num == 0 ? 0.0 : std::sqrt(num) / std::sqrt(den > 0 ? den : 1e-300);
    o.ok = o.rel_error <= (tol >= 0 ? std::max(tol, tol_) : tol_);
    rep_.ops.push_back(o);
  }

  Backend& cand_;
  Backend& ref_;
  double tol_;
  BackendCheckReport& rep_;
  Rng rng_;
  std::vector<Pair> f_;
  std::vector<PairI> i_;
  std::vector<Pair16> h_;
};

// Runs `f(backend, side)` on both backends; side 0 = candidate, 1 = reference.
template <typename F>
void both(Checker& k, F f) {
  f(k.cand(), 0);
  f(k.ref(), 1);
}
inline DFloat side(const Pair& p, int s) { return s == 0 ? p.cand : p.ref; }
inline DInt side(const PairI& p, int s) { return s == 0 ? p.cand : p.ref; }
inline DBf16 side(const Pair16& p, int s) { return s == 0 ? p.cand : p.ref; }

void check_gemm(Checker& k) {
  const int64_t m = 37, n = 29, kk = 70;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      // A is (m, k) or, transposed, (k, m); leading dimensions padded by 2 to catch ld mix-ups.
      const int64_t lda = (ta ? m : kk) + 2, ldb = (tb ? kk : n) + 2, ldc = n + 3;
      Pair a = k.rand((ta ? kk : m) * lda), b = k.rand((tb ? n : kk) * ldb), c = k.rand(m * ldc);
      both(k, [&](Backend& be, int s) {
        be.gemm(ta, tb, m, n, kk, 0.75f, side(a, s), lda, side(b, s), ldb, 0.5f, side(c, s), ldc);
      });
      k.compare(std::string("gemm(") + (ta ? "T" : "N") + (tb ? "T" : "N") + ")", {c});
    }
}

void check_linear(Checker& k, const BackendCheckShape& sh) {
  const int64_t n = sh.batch * sh.seq, in = sh.c, out = 3 * sh.c, r = 8;
  Pair x = k.rand(n * in), w = k.rand(in * out, -0.1f, 0.1f), bias = k.rand(out), u = k.rand(n * r),
       bl = k.rand(out * r), y = k.zeros(n * out), y0 = k.zeros(n * out);
  both(k, [&](Backend& be, int s) {
    be.linear_forward(side(y, s), side(x, s), side(w, s), side(bias, s), side(u, s), side(bl, s), 2.0f, n, in, out, r);
    be.linear_forward(side(y0, s), side(x, s), side(w, s), side(bias, s), DFloat(), DFloat(), 0.0f, n, in, out, 0);
  });
  k.compare("linear_forward(lora)", {y});
  k.compare("linear_forward", {y0});
}

// The LoRA products around the LoRA-input dropout, with a packed mask (dropout_mask) and without:
// a mask bit that differs between the backends changes an output element by about |x| / (1 - p),
// far above the tolerance. At the model's rows, so the CUDA backend's fused kernels run; the mask's
// first index 3 is not a multiple of 4 (a draw's lanes straddle the mask's words).
void check_lora(Checker& k, const BackendCheckShape& sh) {
  const int64_t n = sh.batch * sh.seq, in = sh.c, r = 8;
  PairI bits = k.ints(std::vector<int32_t>((size_t)dropout_mask_words(n * in), -1));
  Pair x = k.rand(n * in), a = k.rand(r * in), du = k.rand(n * r);
  Pair u = k.zeros(n * r), ga = k.zeros(r * in), dx = k.rand(n * in);
  Pair u0 = k.zeros(n * r), ga0 = k.zeros(r * in), dx0 = k.rand(n * in);
  both(k, [&](Backend& be, int s) {
    be.dropout_mask(side(bits, s), n * in, 0.1f, 99, 3);
    const DropoutMask m{side(bits, s), 0.1f};
    be.lora_down(side(u, s), side(x, s), side(a, s), m, n, in, r);
    be.lora_down_grad(side(ga, s), side(du, s), side(x, s), m, n, in, r);
    be.lora_input_grad(side(dx, s), side(du, s), side(a, s), m, n, in, r);
    be.lora_down(side(u0, s), side(x, s), side(a, s), DropoutMask{}, n, in, r);
    be.lora_down_grad(side(ga0, s), side(du, s), side(x, s), DropoutMask{}, n, in, r);
    be.lora_input_grad(side(dx0, s), side(du, s), side(a, s), DropoutMask{}, n, in, r);
  });
  k.compare("lora_down(dropout)", {u});
  k.compare("lora_down_grad(dropout)", {ga});
  k.compare("lora_input_grad(dropout)", {dx});
  k.compare("lora_down/grad/input_grad", {u0, ga0, dx0});
}

void check_layernorm_gelu(Checker& k, const BackendCheckShape& sh) {
  const int64_t n = sh.batch * sh.seq, c = sh.c;
  Pair x = k.rand(n * c, -2.0f, 2.0f), w = k.rand(c, 0.5f, 1.5f), b = k.rand(c), y = k.zeros(n * c),
       mean = k.zeros(n), rstd = k.zeros(n);
  both(k, [&](Backend& be, int s) {
    be.layernorm_forward(side(y, s), side(mean, s), side(rstd, s), side(x, s), side(w, s), side(b, s), n, c, 1e-5);
  });
  k.compare("layernorm_forward", {y, mean, rstd});
  Pair r = k.rand(n * c), sum = k.zeros(n * c), y2 = k.zeros(n * c), mean2 = k.zeros(n), rstd2 = k.zeros(n);
  both(k, [&](Backend& be, int s) {
    be.residual_layernorm_forward(side(sum, s), side(y2, s), side(mean2, s), side(rstd2, s), side(x, s), side(r, s),
                                  side(w, s), side(b, s), n, c, 1e-5);
  });
  k.compare("residual_layernorm_forward", {sum, y2, mean2, rstd2});
  Pair dx = k.rand(n * c), dw = k.rand(c), db = k.rand(c), dy = k.rand(n * c);
  both(k, [&](Backend& be, int s) {
    be.layernorm_backward(side(dx, s), side(dw, s), side(db, s), side(dy, s), side(x, s), side(w, s), side(mean, s),
                          side(rstd, s), n, c);
  });
  k.compare("layernorm_backward", {dx, dw, db});

  Pair g = k.zeros(n * c), dg = k.zeros(n * c);
  both(k, [&](Backend& be, int s) {
    be.gelu_forward(side(g, s), side(x, s), n * c);
    be.gelu_backward(side(dg, s), side(dy, s), side(x, s), n * c);
  });
  k.compare("gelu_forward", {g});
  k.compare("gelu_backward", {dg});
}

// Both operand precisions: the bf16 mode compares against the CPU's bf16 oracle (the same operands
// rounded), so only the fp32 summation order differs, as for the fp32 mode.
void check_attention(Checker& k, const BackendCheckShape& sh) {
  const int64_t b = sh.batch, t = sh.seq, c = sh.c, nh = sh.nh, n = b * t;
  for (const AttentionPrecision prec : {AttentionPrecision::FP32, AttentionPrecision::BF16})
  for (const float p : {0.0f, 0.1f}) {
    const DropoutSite drop{p, 77, 1000};
    const bool bf = prec == AttentionPrecision::BF16;
    const std::string tag = p > 0 ? (bf ? "(dropout, bf16)" : "(dropout)") : (bf ? "(bf16)" : "");
    Pair qkv = k.rand(n * 3 * c), out = k.zeros(n * c), dout = k.rand(n * c), dqkv = k.zeros(n * 3 * c);
    Pair att = k.sized(k.cand().attention_saved_floats(b, t, c, nh, prec),
                       k.ref().attention_saved_floats(b, t, c, nh, prec));
    Pair scr = k.sized(k.cand().attention_scratch_floats(b, t, c, nh), k.ref().attention_scratch_floats(b, t, c, nh));
    both(k, [&](Backend& be, int s) {
      be.attention_forward(side(out, s), side(att, s), side(qkv, s), b, t, c, nh, side(scr, s), drop, prec);
    });
    k.compare("attention_forward" + tag, {out});
    both(k, [&](Backend& be, int s) {
      be.attention_backward(side(dqkv, s), side(scr, s), side(dout, s), side(qkv, s), side(out, s), side(att, s), b, t,
                            c, nh, drop, prec);
    });
    k.compare("attention_backward" + tag, {dqkv});
  }
}

void check_embedding(Checker& k, const BackendCheckShape& sh) {
  const int64_t b = sh.batch, t = sh.seq, c = sh.c, v = sh.vocab, n = b * t;
  std::vector<float> u = k.random(n, 0.0f, 1.0f);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (size_t i = 0; i < ids.size(); ++i)  // repeated ids: the scatter-add must sum them
    ids[i] = static_cast<int32_t>(std::min<int64_t>(v - 1, static_cast<int64_t>(u[i] * std::min<int64_t>(v, 17))));
  PairI id = k.ints(ids);
  Pair wte = k.rand(v * c), wpe = k.rand(t * c), out = k.zeros(n * c);
  both(k, [&](Backend& be, int s) {
    be.embedding_forward(side(out, s), side(id, s), side(wte, s), side(wpe, s), b, t, c);
  });
  k.compare("embedding_forward", {out});
  Pair dwte = k.rand(v * c), dwpe = k.rand(t * c), dout = k.rand(n * c);
  both(k, [&](Backend& be, int s) {
    be.embedding_backward(side(dwte, s), side(dwpe, s), side(dout, s), side(id, s), b, t, c);
  });
  k.compare("embedding_backward", {dwte, dwpe});
}

void check_elementwise(Checker& k, const BackendCheckShape& sh) {
  const int64_t n = sh.batch * sh.seq, c = sh.c, len = n * c + 3;  // odd length: vector tails
  Pair bias = k.rand(c), y = k.zeros(n * c);
  both(k, [&](Backend& be, int s) { be.bias_broadcast(side(y, s), side(bias, s), n, c); });
  k.compare("bias_broadcast", {y});
  Pair a = k.rand(len), b2 = k.rand(len), sum = k.zeros(len);
  both(k, [&](Backend& be, int s) {
    be.add(side(sum, s), side(a, s), side(b2, s));
    be.scale(side(sum, s), -1.5f);
  });
  k.compare("add+scale", {sum});
  Pair d0 = k.zeros(len), d1 = k.rand(len);
  both(k, [&](Backend& be, int s) {
    be.dropout(side(d0, s), side(a, s), 0.2f, 99, 12345, false);
    be.dropout(side(d1, s), side(a, s), 0.2f, 99, 7, true);
  });
  k.compare("dropout", {d0, d1});
  Pair db = k.rand(c), dy = k.rand(n * c);
  both(k, [&](Backend& be, int s) { be.colsum_accumulate(side(db, s), side(dy, s), n, c); });
  k.compare("colsum_accumulate", {db});
  double sums[2] = {0, 0}, squares[2] = {0, 0};
  both(k, [&](Backend& be, int s) {
    sums[s] = be.sum(side(a, s));
    squares[s] = be.sum_squares(side(a, s));
  });
  k.compare_scalar("sum", sums[0], sums[1]);
  k.compare_scalar("sum_squares", squares[0], squares[1]);
}

void check_lm_head(Checker& k, const BackendCheckShape& sh) {
  const int64_t n = sh.lm_rows, c = sh.c, v = sh.vocab;
  std::vector<float> u = k.random(n, 0.0f, 1.0f), wt(static_cast<size_t>(n), 1.0f);
  std::vector<int32_t> tg(static_cast<size_t>(n));
  for (size_t i = 0; i < tg.size(); ++i) tg[i] = static_cast<int32_t>(std::min<int64_t>(v - 1, (int64_t)(u[i] * v)));
  wt[1 % wt.size()] = 0.0f;  // a masked row: skipped by both
  wt[0] = 0.5f;
  PairI tgt = k.ints(tg);
  Pair w = k.put(wt), h = k.rand(n * c), wte = k.rand(v * c, -0.2f, 0.2f), loss = k.zeros(n), dh = k.zeros(n * c),
       dwte = k.zeros(v * c);
  Pair scr = k.sized(k.cand().lm_head_ce_scratch(c, v), k.ref().lm_head_ce_scratch(c, v));
  both(k, [&](Backend& be, int s) {
    be.lm_head_ce(side(loss, s), side(dh, s), side(dwte, s), side(h, s), side(wte, s), side(tgt, s), side(w, s), n, c,
                  v, side(scr, s));
  });
  k.compare("lm_head_ce(loss)", {loss});
  k.compare("lm_head_ce(dh, dwte)", {dh, dwte});
}

void check_adam(Checker& k) {
  const int64_t n = 1001;
  Pair p = k.rand(n), g = k.rand(n), m = k.rand(n, -0.1f, 0.1f), v = k.rand(n, 0.0f, 0.01f);
  both(k, [&](Backend& be, int s) {
    be.adam_step(side(p, s), side(g, s), side(m, s), side(v, s), 1e-3, 0.9, 0.999, 1e-8, 0.01, true, 1 - 0.9 * 0.9,
                 1 - 0.999 * 0.999);
    be.adam_step(side(p, s), side(g, s), side(m, s), side(v, s), 1e-3, 0.9, 0.999, 1e-8, 0.0, false, 1 - 0.9 * 0.9 * 0.9,
                 1 - 0.999 * 0.999 * 0.999);
  });
  k.compare("adam_step", {p, m, v});
}

// bf16 activations (Backend DAct), the ops of a bf16 model: LayerNorm and GELU storing bf16, the
// linear layer reading a bf16 x (and writing a bf16 y), the attention storing a bf16 out. w (frozen
// bf16, (C, 3C)), bias, u, bl: check_bf16's.
void check_bf16_activations(Checker& k, const BackendCheckShape& sh, const Pair& w, const Pair& bias, const Pair& u,
                            const Pair& bl) {
  const int64_t n = sh.batch * sh.seq, in = sh.c, out = 3 * sh.c, r = 8;
  const int64_t c = sh.c;
  Pair ln_x = k.rand(n * c, -2.0f, 2.0f), ln_w = k.rand(c), ln_b = k.rand(c), mean = k.zeros(n), rstd = k.zeros(n);
  Pair16 ln_y = k.zeros16(n * c), g_y = k.zeros16(n * c), lin_y = k.zeros16(n * out);
  Pair lin_yl = k.zeros(n * out);
  both(k, [&](Backend& be, int s) {
    be.layernorm_forward(side(ln_y, s), side(mean, s), side(rstd, s), side(ln_x, s), side(ln_w, s), side(ln_b, s), n,
                         c, 1e-5);
    be.gelu_forward(side(g_y, s), side(ln_y, s), n * c);
    be.linear_forward(side(lin_yl, s), side(ln_y, s), side(w, s), side(bias, s), side(u, s), side(bl, s), 2.0f, n, in,
                      out, r);
    be.linear_forward(side(lin_y, s), side(g_y, s), side(w, s), side(bias, s), DFloat(), DFloat(), 0.0f, n, in, out,
                      0);
  });
  k.compare16("layernorm_forward(bf16 y)", ln_y);
  k.compare16("gelu_forward(bf16)", g_y);
  k.compare("linear_forward(lora, bf16 x)", {lin_yl});
  k.compare16("linear_forward(bf16 x, bf16 y)", lin_y);
  const int64_t b = sh.batch, t = sh.seq, nh = sh.nh;
  const auto BF = AttentionPrecision::BF16;
  Pair qkv = k.rand(b * t * 3 * c);
  Pair16 ao = k.zeros16(b * t * c);
  Pair att = k.sized(k.cand().attention_saved_floats(b, t, c, nh, BF), k.ref().attention_saved_floats(b, t, c, nh, BF));
  Pair scr = k.sized(k.cand().attention_scratch_floats(b, t, c, nh), k.ref().attention_scratch_floats(b, t, c, nh));
  both(k, [&](Backend& be, int s) {
    be.attention_forward(side(ao, s), side(att, s), side(qkv, s), b, t, c, nh, side(scr, s), DropoutSite{}, BF);
  });
  k.compare16("attention_forward(bf16, bf16 out)", ao);
}

// Frozen bf16 base weights (Backend::freeze_weights): the weight-side GEMMs with a frozen operand,
// the fused linear layer and the LM head with a frozen tied embedding. The CPU rounds the same
// operands, so only the fp32 summation order differs.
void check_bf16(Checker& k, const BackendCheckShape& sh) {
  const int64_t n = sh.batch * sh.seq, in = sh.c, out = 3 * sh.c, r = 8;
  Pair w = k.rand(in * out, -0.1f, 0.1f), x = k.rand(n * in), y = k.zeros(n * out), dy = k.rand(n * out),
       dx = k.zeros(n * in), bias = k.rand(out), u = k.rand(n * r), bl = k.rand(out * r), yl = k.zeros(n * out),
       yb = k.zeros(n * out);
  both(k, [&](Backend& be, int s) {
    be.freeze_weights(side(w, s), WeightPrecision::BF16);
    be.gemm(false, false, n, out, in, 1.0f, side(x, s), in, side(w, s), out, 0.0f, side(y, s), out);
    be.gemm(false, true, n, in, out, 1.0f, side(dy, s), out, side(w, s), out, 0.0f, side(dx, s), in);
    be.linear_forward(side(yl, s), side(x, s), side(w, s), side(bias, s), side(u, s), side(bl, s), 2.0f, n, in, out, r);
    // Without a LoRA term (the CUDA backend's bias-epilogue GEMM, kernels/cuda/gemm_lt.h).
    be.linear_forward(side(yb, s), side(x, s), side(w, s), side(bias, s), DFloat(), DFloat(), 0.0f, n, in, out, 0);
  });
  k.compare("gemm(NN, bf16 weight)", {y});
  k.compare("gemm(NT, bf16 weight)", {dx});
  k.compare("linear_forward(lora, bf16 weight)", {yl});
  k.compare("linear_forward(bf16 weight)", {yb});

  check_bf16_activations(k, sh, w, bias, u, bl);


  const int64_t rows = sh.lm_rows, c = sh.c, v = sh.vocab;
  std::vector<int32_t> tg(static_cast<size_t>(rows));
  for (size_t i = 0; i < tg.size(); ++i) tg[i] = static_cast<int32_t>((i * 7919) % static_cast<size_t>(v));
  PairI tgt = k.ints(tg);
  Pair wt = k.put(std::vector<float>(static_cast<size_t>(rows), 1.0f)), h = k.rand(rows * c),
       wte = k.rand(v * c, -0.2f, 0.2f), loss = k.zeros(rows), dh = k.zeros(rows * c);
  Pair scr = k.sized(k.cand().lm_head_ce_scratch(c, v), k.ref().lm_head_ce_scratch(c, v));
  both(k, [&](Backend& be, int s) {
    be.freeze_weights(side(wte, s), WeightPrecision::BF16);
    be.lm_head_ce(side(loss, s), side(dh, s), DFloat(), side(h, s), side(wte, s), side(tgt, s), side(wt, s), rows, c, v,
                  side(scr, s));
  });
  k.compare("lm_head_ce(bf16 wte)", {loss, dh});
}

}  // namespace

BackendCheckReport backend_check(Backend& candidate, Backend& reference, const BackendCheckShape& shape,
                                 double tolerance) {
  const auto t0 = std::chrono::steady_clock::now();
  BackendCheckReport rep;
  rep.tolerance = tolerance;
  {
    Checker k(candidate, reference, tolerance, rep);
    check_gemm(k);
    check_linear(k, shape);
    check_lora(k, shape);
    check_layernorm_gelu(k, shape);
    check_attention(k, shape);
    check_embedding(k, shape);
    check_elementwise(k, shape);
    check_lm_head(k, shape);
    check_adam(k);
    check_bf16(k, shape);
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace mira
