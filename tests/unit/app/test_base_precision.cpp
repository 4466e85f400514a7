// model.base_precision: the key's values and messages, and how a run resolves it
// (app/base_precision.h): auto = bf16 on cuda, fp32 on cpu; pretrain refuses bf16.
#include <gtest/gtest.h>

#include "app/base_precision.h"
#include "app/config_load.h"
#include "runtime/agree.h"
#include "runtime/error.h"

using namespace mira;

namespace {
Config parse(std::vector<std::string> args) {
  return config_parse(args, [](const std::string& p) -> std::string { throw UserError("no file " + p); }).config;
}
}  // namespace

TEST(BasePrecision, KeyValuesAndErrors) {
  EXPECT_EQ(parse({}).model.base_precision, BasePrecision::AUTO);
  EXPECT_EQ(parse({"--model.base_precision", "bf16"}).model.base_precision, BasePrecision::BF16);
  EXPECT_EQ(parse({"--model.base_precision", "fp32"}).model.base_precision, BasePrecision::FP32);
  try {
    parse({"--model.base_precision", "fp16"});
    FAIL() << "fp16 accepted";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "command line: model.base_precision = 'fp16': expected one of auto | fp32 | bf16");
  }
}

TEST(BasePrecision, ResolvedPerBackendAndCommand) {
  Config c = parse({});
  EXPECT_EQ(setup_base_precision(c, "cpu", false), WeightPrecision::FP32);
  EXPECT_EQ(setup_base_precision(c, "cuda", false), WeightPrecision::BF16);
  EXPECT_EQ(setup_base_precision(c, "cuda+timed", false), WeightPrecision::BF16);
  EXPECT_EQ(setup_base_precision(c, "cuda", true), WeightPrecision::FP32);  // pretrain: trained weights
  c = parse({"--model.base_precision", "bf16"});
  EXPECT_EQ(setup_base_precision(c, "cpu", false), WeightPrecision::BF16);  // the CPU oracle runs it too
  try {
    setup_base_precision(c, "cuda", true);
    FAIL() << "bf16 accepted for pretrain";
  } catch (const CollectiveUserError& e) {
    EXPECT_STREQ(e.what(),
                 "command line: model.base_precision = bf16 applies to frozen base weights, but pretrain trains them "
                 "(full fine-tuning); allowed here: auto or fp32");
  }
  c = parse({"--model.base_precision", "fp32"});
  EXPECT_EQ(setup_base_precision(c, "cuda", false), WeightPrecision::FP32);
}
