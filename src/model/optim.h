// Optimiser settings for LoRA training: torch.optim.Adam (L2: weight_decay * param added to the
// gradient) or torch.optim.AdamW (decoupled decay), plus torch.nn.utils.clip_grad_norm_ over all
// adapter gradients (total 2-norm; scaled by max_norm / (norm + 1e-6) when that is < 1).
#pragma once

namespace mira {

enum class OptimKind { ADAM, ADAMW };

struct OptimConfig {
  OptimKind kind = OptimKind::ADAM;  // authors' code: Adam, lr 3e-4, wd 1e-2, clip 5 (MIRA.md)
  double lr = 3e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  double clip = 5.0;  // max grad norm; <= 0 disables clipping
};

}  // namespace mira
