// Fused LM head + softmax + token cross-entropy (+ its gradient w.r.t. the hidden states).
// Why fused: the (B*T, V) logits/probability matrix of GPT-2 (V = 50257) is hundreds of MB; here only
// CE_CHUNK rows of it exist at a time. Only rows with a non-zero loss weight are computed at all
// (prompt and padding tokens carry no loss). Chunks run in order; the GEMMs inside are cpu_gemm's
// (thread-count invariant: kernels/cpu/gemm.h) and the per-row softmax is row-parallel, so the
// result does not depend on the thread count.
#pragma once
#include <cstdint>

namespace mira {

// Rows per chunk: (256, 50257) floats = 51 MB of scratch for GPT-2 (torch materialises 411 MB of
// logits plus as much gradient for B*T = 2048). Fewer rows make the GEMM re-pack the whole (V, C)
// wte for too little work (64 rows: packing took ~20% of the step); 512 rows measured no faster.
constexpr int64_t CE_CHUNK = 256;

// Scratch elements cpu_lm_head_ce needs for hidden size c and vocabulary v.
inline int64_t cpu_lm_head_ce_scratch(int64_t c, int64_t v) { return CE_CHUNK * (v + 2 * c); }

// h: (N, C) final hidden states; wte: (V, C) tied embedding; targets: (N); weight: (N) loss weight
// per row (0 = row skipped). Outputs: loss_rows (N) = CE of each row (0 where skipped); if dh is
// non-null, dh (N, C) = d(sum_i weight_i * CE_i)/dh (overwritten, 0 on skipped rows); if dwte is
// non-null (full fine-tuning), dwte (V, C) += the LM head's gradient w.r.t. the tied wte
// (chunks accumulated in order).
// bf16_operands (the bf16 frozen-weight mode, Backend::freeze_weights; wte must already hold bf16
// values and dwte must be null): the gathered hidden rows are rounded to bf16 before the logits GEMM
// and dlogits before the dh GEMM (bf16_round, kernels/cpu/bf16.h; for T = double through float).
template <typename T>
void cpu_lm_head_ce(T* loss_rows, T* dh, T* dwte, const T* h, const T* wte, const int32_t* targets, const T* weight,
                    int64_t n, int64_t c, int64_t v, T* scratch, bool bf16_operands = false);

}  // namespace mira
