// A deterministic training batch for model tests: B x T random token ids and targets for a
// vocabulary of v (independent draws from a fixed stream keyed by `key`), with the loss on the last
// two thirds of every sequence. The BatchView points into the object, so keep it alive while used.
#pragma once
#include <cstdint>
#include <vector>

#include "model/gpt2_model.h"
#include "runtime/rng.h"

namespace mira_test {

struct RandomBatch {
  std::vector<int32_t> in, tgt;
  std::vector<float> mask;
  mira::BatchView b;
  RandomBatch(int64_t B, int64_t T, int64_t v, uint64_t key) {
    mira::Rng r(7, mira::RngPurpose::DATA_SYNTH, key);
    for (int64_t i = 0; i < B * T; ++i) {
      in.push_back((int32_t)r.below((uint64_t)v));
      tgt.push_back((int32_t)r.below((uint64_t)v));
      mask.push_back(i % T >= T / 3 ? 1.0f : 0.0f);
    }
    b.B = B, b.T = T, b.inputs = in.data(), b.targets = tgt.data(), b.loss_mask = mask.data();
  }
  RandomBatch(const RandomBatch&) = delete;  // b points into this object
  RandomBatch& operator=(const RandomBatch&) = delete;
};

}  // namespace mira_test
