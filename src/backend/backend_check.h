// A start-up self-check of a compute backend against a reference backend (the CPU backend): every
// op of the Backend interface runs on the same small random inputs on both, and each output is
// compared norm-wise. It guards a run against a backend that computes wrong numbers (a kernel bug, a
// broken driver or library) before any training is spent on it: `run.backend = auto` falls back to
// the CPU when the check fails, `run.backend = cuda` stops with the failing op named.
//
// It is a sanity check, not the test suite: shapes are small (the model's head size, a short
// sequence, a handful of LM-head rows) and the tolerance is loose for fp32 but far below what a wrong
// kernel produces (tests/gpu holds the per-element comparisons with reasoned tolerances).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace mira {

// Sizes the check runs at: the model's width, heads and vocabulary, so the attention and LM-head
// kernels it exercises are the ones the run will use.
struct BackendCheckShape {
  int64_t c = 64;        // model width (n_embd)
  int64_t nh = 4;        // attention heads (c % nh == 0)
  int64_t vocab = 256;   // vocabulary size
  int64_t batch = 2;     // B of the attention / embedding checks
  int64_t seq = 37;      // T: not a multiple of any tile size, to reach tile edges
  int64_t lm_rows = 6;   // rows through the LM head (it costs rows * c * vocab * 6 flops on the reference)
};

struct BackendCheckOp {
  std::string op;        // "gemm(TN)", "attention_backward(dropout)", ...
  double rel_error = 0;  // ||candidate - reference|| / ||reference|| over the op's outputs (NaN -> inf)
  bool ok = false;
};

struct BackendCheckReport {
  std::vector<BackendCheckOp> ops;
  double tolerance = 0;
  double seconds = 0;
  bool ok() const;
  // "" when every op passed, else one line naming each failing op and its error.
  std::string failures() const;
  int count_ok() const;
};

// The relative tolerance on every op: fp32 ops reordered (a different summation order, FMA
// contraction, a different exp/tanh) differ by a few units of 2^-24 times a growth factor of the
// reduction length (<= a few hundred here), i.e. around 1e-6; a wrong index, a missing term or a
// race gives errors of order 1e-2..1. 1e-4 separates the two with a wide margin on both sides.
constexpr double kBackendCheckTolerance = 1e-4;
// Outputs stored in bf16 (Backend DAct): each element is its fp32 value rounded to bf16, and where two
// backends' fp32 values (equal to ~1e-6) lie on either side of a rounding midpoint the stored values
// differ by one bf16 ulp (2^-8 relative). That happens to a few in 10^4 elements (and more near
// ties), i.e. ~1e-4 norm-wise; a wrong conversion (truncation instead of rounding: ~2^-9 on every
// element) or a wrong index gives 2e-3..1. 1e-3 separates the two.
constexpr double kBf16StorageTolerance = 1e-3;

// Runs every op on `candidate` and `reference`, compares, and returns the report (it never throws for
// a mismatch; it throws what the backends throw, e.g. a CUDA error). Allocates and releases its own
// buffers on both backends.
BackendCheckReport backend_check(Backend& candidate, Backend& reference, const BackendCheckShape& shape,
                                 double tolerance = kBackendCheckTolerance);

}  // namespace mira
