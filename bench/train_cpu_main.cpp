// Benchmark driver (our side of bench/train_cpu.sh): LoRA training steps (forward + backward +
// clipping + AdamW) of a GPT-2 shaped model on the CPU backend; prints one JSON object with the
// measured tokens/s on stdout. Usage:
//   train_cpu_main [--preset gpt2-124m-shape] [--vocab 50257] [--seq 512] [--batch 4] [--r 16]
//                  [--steps 3] [--warmup 1]
// Threads: OMP_NUM_THREADS (OpenBLAS follows OpenMP in its OpenMP build).
#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "model/gpt2_model.h"
#include "runtime/rng.h"

int main(int argc, char** argv) {
  std::string preset = "gpt2-124m-shape";
  int64_t vocab = 50257, T = 512, B = 4, r = 16, steps = 3, warmup = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--preset") preset = v;
    else if (k == "--vocab") vocab = std::atoll(v);
    else if (k == "--seq") T = std::atoll(v);
    else if (k == "--batch") B = std::atoll(v);
    else if (k == "--r") r = std::atoll(v);
    else if (k == "--steps") steps = std::atoll(v);
    else if (k == "--warmup") warmup = std::atoll(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  using namespace mira;
  auto be = backend_create_cpu();
  LoraConfig lc;  // paper settings: r, alpha 8, dropout 0.05, targets c_attn + c_proj
  lc.r = r, lc.alpha = 8, lc.dropout = 0.05;
  OptimConfig oc;
  oc.kind = OptimKind::ADAMW, oc.lr = 3e-4, oc.weight_decay = 1e-2, oc.clip = 5.0;
  const auto t_init = std::chrono::steady_clock::now();
  Gpt2Model model(*be, gpt2_init_preset(gpt2_config_preset(preset, vocab), 0), lc, oc, 0);
  std::vector<int32_t> in((size_t)(B * T)), tgt(in.size());
  std::vector<float> mask(in.size(), 1.0f);  // every token counted (the peer computes all logits too)
  Rng rng(0, RngPurpose::DATA_SYNTH);
  for (auto& x : in) x = (int32_t)rng.below((uint64_t)vocab);
  for (auto& x : tgt) x = (int32_t)rng.below((uint64_t)vocab);
  BatchView b;
  b.B = B, b.T = T, b.inputs = in.data(), b.targets = tgt.data(), b.loss_mask = mask.data();
  std::fprintf(stderr, "init %.1f s, adapter %lld floats, threads %d\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t_init).count(),
               (long long)model.adapter_size(), omp_get_max_threads());
  double loss = 0;
  for (int64_t s = 0; s < warmup; ++s) loss = model.train_step(b, StepContext{0, s});
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    loss = model.train_step(b, StepContext{0, warmup + s});
    std::fprintf(stderr, "step %lld loss %.4f\n", (long long)s, loss);
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);  // ru_maxrss: peak resident set in KiB (Linux)
  std::printf("{\"tokens_per_s\":%.3f,\"ms_per_step\":%.1f,\"steps\":%lld,\"loss\":%.5f,\"threads\":%d,"
              "\"peak_rss_mib\":%.1f}\n",
              (double)(B * T * steps) / sec, 1e3 * sec / (double)steps, (long long)steps, loss, omp_get_max_threads(),
              ru.ru_maxrss / 1024.0);
  return 0;
}
