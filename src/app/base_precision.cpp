// model.base_precision (see base_precision.h).
#include "app/base_precision.h"

#include "runtime/agree.h"
#include "runtime/log.h"

namespace mira {

WeightPrecision setup_base_precision(const Config& c, const std::string& backend_name, bool full_finetune) {
  const bool cuda = backend_name.rfind("cuda", 0) == 0;
  const BasePrecision p = c.model.base_precision;
  if (full_finetune) {
    if (p == BasePrecision::BF16) {
      auto it = c.origin.find("model.base_precision");
      const std::string where = it != c.origin.end() ? it->second + ": " : "";
      throw CollectiveUserError(where +
                                "model.base_precision = bf16 applies to frozen base weights, but pretrain trains "
                                "them (full fine-tuning); allowed here: auto or fp32");
    }
    if (p == BasePrecision::AUTO && cuda)
      log_info("model.base_precision = auto: fp32 for pretrain (full fine-tuning trains the base weights)");
    return WeightPrecision::FP32;
  }
  if (p == BasePrecision::BF16) return WeightPrecision::BF16;
  if (p == BasePrecision::FP32) return WeightPrecision::FP32;
  return cuda ? WeightPrecision::BF16 : WeightPrecision::FP32;
}

}  // namespace mira
