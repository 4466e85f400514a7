// model.base_precision resolved for a run (docs/cuda.md, "bf16 frozen base weights"): the storage
// precision the model gives its frozen base weights (Gpt2Model::set_base_precision).
#pragma once
#include <string>

#include "app/config.h"
#include "backend/backend.h"

namespace mira {

// fp32 / bf16 as set; auto = bf16 on the cuda backend (backend_name = Backend::name(), "cuda" or
// e.g. "cuda+timed"), fp32 otherwise. full_finetune (the pretrain command, whose base weights are trained, not frozen): auto
// gives fp32 (logged when the backend is cuda) and bf16 is refused with a one-line
// CollectiveUserError (the configuration and the backend kind are the same on every rank).
WeightPrecision setup_base_precision(const Config& c, const std::string& backend_name, bool full_finetune);

}  // namespace mira
