// What the LoRA training benchmarks (bench/train_cpu_main.cpp, bench/train_gpu_main.cpp) train, in
// one place so the CPU and GPU figures measure the same step: the paper's LoRA settings, AdamW as
// the peers run it, and one batch of random token ids with every token counted (the peers compute
// all logits too).
#pragma once
#include <cstdint>
#include <vector>

#include "model/gpt2_model.h"
#include "runtime/rng.h"

namespace mira {

// r, alpha 8, dropout 0.05 on the default targets (c_attn + c_proj).
inline LoraConfig train_bench_lora(int64_t r) {
  LoraConfig lc;
  lc.r = r, lc.alpha = 8, lc.dropout = 0.05;
  return lc;
}

inline OptimConfig train_bench_optim() {
  OptimConfig oc;
  oc.kind = OptimKind::ADAMW, oc.lr = 3e-4, oc.weight_decay = 1e-2, oc.clip = 5.0;
  return oc;
}

// B x T random inputs and targets over the vocabulary, loss mask all ones. `b` points into this
// object: keep it alive while the batch is used.
struct TrainBenchBatch {
  std::vector<int32_t> in, tgt;
  std::vector<float> mask;
  BatchView b;
  TrainBenchBatch(int64_t B, int64_t T, int64_t vocab)
      : in(static_cast<size_t>(B * T)), tgt(in.size()), mask(in.size(), 1.0f) {
    Rng rng(0, RngPurpose::DATA_SYNTH);
    for (auto& x : in) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab)));
    for (auto& x : tgt) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab)));
    b.B = B, b.T = T, b.inputs = in.data(), b.targets = tgt.data(), b.loss_mask = mask.data();
  }
  TrainBenchBatch(const TrainBenchBatch&) = delete;
  TrainBenchBatch& operator=(const TrainBenchBatch&) = delete;
};

}  // namespace mira
