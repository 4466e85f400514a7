// Options shared by the LoRA training benchmarks (bench/train_cpu_main.cpp, bench/train_gpu_main.cpp):
// the model shape and the step counts. Each program keeps its own defaults and its own loop over
// argv (and its extra options); this only applies the shared "--key value" pairs.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <string>

namespace mira {

struct TrainBenchOptions {
  std::string preset = "gpt2-124m-shape";
  int64_t vocab = 50257, T = 512, B = 4, r = 16, steps = 3, warmup = 1;
};

// Sets the option named k (--preset --vocab --seq --batch --r --steps --warmup) from v; false when
// k is none of them.
inline bool train_bench_option(TrainBenchOptions& o, const std::string& k, const char* v) {
  if (k == "--preset") o.preset = v;
  else if (k == "--vocab") o.vocab = std::atoll(v);
  else if (k == "--seq") o.T = std::atoll(v);
  else if (k == "--batch") o.B = std::atoll(v);
  else if (k == "--r") o.r = std::atoll(v);
  else if (k == "--steps") o.steps = std::atoll(v);
  else if (k == "--warmup") o.warmup = std::atoll(v);
  else return false;
  return true;
}

}  // namespace mira
