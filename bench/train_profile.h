// The MIRA_PROFILE=1 table of the training benchmarks (bench/train_cpu_main.cpp, train_gpu_main.cpp):
// a TimedBackend's per-op totals (src/backend/backend_timed.h) over the timed steps, per op and per
// op family, on stderr.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include "backend/backend_timed.h"

namespace mira {

// Family of a backend op, the same grouping as bench/train_cpu_peer.py --profile.
inline const char* train_profile_family(const std::string& op) {
  if (op.rfind("gemm.", 0) == 0 || op == "bias_broadcast") return "gemm (incl. LoRA)";
  if (op.rfind("attention", 0) == 0) return "attention";
  if (op == "lm_head_ce") return "lm head + softmax + CE";
  if (op.rfind("layernorm", 0) == 0) return "layernorm";
  if (op.rfind("gelu", 0) == 0) return "gelu";
  if (op == "adam_step" || op == "sum_squares" || op == "scale") return "optimiser (clip + AdamW)";
  return "other";
}

// Table on stderr: per op and per family, seconds per step and % of the step; "other" also holds
// the wall time spent outside backend calls (host code between ops).
inline void print_train_profile(const std::map<std::string, OpTime>& totals, double sec, int64_t steps) {
  const char* order[] = {"gemm (incl. LoRA)", "attention",  "lm head + softmax + CE", "layernorm",
                         "gelu",              "optimiser (clip + AdamW)", "other"};
  std::map<std::string, double> fam;
  double booked = 0;
  std::fprintf(stderr, "profile (ours): %-22s %10s %8s %7s\n", "op", "s", "calls", "%");
  for (const auto& kv : totals) {
    std::fprintf(stderr, "profile (ours): %-22s %10.3f %8lld %6.1f%%\n", kv.first.c_str(), kv.second.seconds,
                 (long long)kv.second.calls, 100.0 * kv.second.seconds / sec);
    fam[train_profile_family(kv.first)] += kv.second.seconds;
    booked += kv.second.seconds;
  }
  fam["other"] += sec - booked;  // outside any backend call
  std::fprintf(stderr, "profile (ours) by family, %% of %.3f s (%lld steps):\n", sec, (long long)steps);
  for (const char* f : order)
    std::fprintf(stderr, "family (ours): %-26s %6.1f%% %9.0f ms\n", f, 100.0 * fam[f] / sec,
                 1e3 * fam[f] / (double)steps);
}


}  // namespace mira
