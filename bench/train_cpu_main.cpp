// Benchmark driver (our side of bench/train_cpu.sh): LoRA training steps (forward + backward +
// clipping + AdamW) of a GPT-2 shaped model on the CPU backend; prints one JSON object with the
// measured tokens/s on stdout. Usage:
//   train_cpu_main [--preset gpt2-124m-shape] [--vocab 50257] [--seq 512] [--batch 4] [--r 16]
//                  [--steps 3] [--warmup 1]
// Threads: OMP_NUM_THREADS (OpenBLAS follows OpenMP in its OpenMP build).
// MIRA_PROFILE=1: wrap the backend in a TimedBackend (src/backend/backend_timed.h) and print, on
// stderr, the wall time of every backend op over the timed steps as a share of the step, grouped
// into the families bench/train_cpu_peer.py --profile uses for torch. Unset: no wrapper at all.
#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend_timed.h"
#include "bench/train_bench_options.h"
#include "bench/train_bench_setup.h"
#include "bench/train_profile.h"
#include "model/gpt2_model.h"


int main(int argc, char** argv) {
  mira::TrainBenchOptions opt;  // defaults: seq 512, batch 4, 3 steps after 1 warm-up
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (!mira::train_bench_option(opt, k, argv[i + 1])) {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  const std::string preset = opt.preset;
  const int64_t vocab = opt.vocab, T = opt.T, B = opt.B, r = opt.r, steps = opt.steps, warmup = opt.warmup;
  using namespace mira;
  const char* prof_env = std::getenv("MIRA_PROFILE");
  const bool profile = prof_env && std::strcmp(prof_env, "1") == 0;
  std::unique_ptr<Backend> be = backend_create_cpu();
  TimedBackend* timed = nullptr;
  if (profile) {
    auto t = std::make_unique<TimedBackend>(std::move(be));
    timed = t.get();
    be = std::move(t);
  }
  const auto t_init = std::chrono::steady_clock::now();
  Gpt2Model model(*be, gpt2_init_preset(gpt2_config_preset(preset, vocab), 0), train_bench_lora(r), train_bench_optim(),
                  0);
  const TrainBenchBatch batch(B, T, vocab);
  std::fprintf(stderr, "init %.1f s, adapter %lld floats, threads %d\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t_init).count(),
               (long long)model.adapter_size(), omp_get_max_threads());
  double loss = 0;
  for (int64_t s = 0; s < warmup; ++s) loss = model.train_step(batch.b, StepContext{0, s});
  if (timed) timed->reset();
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    loss = model.train_step(batch.b, StepContext{0, warmup + s});
    std::fprintf(stderr, "step %lld loss %.4f\n", (long long)s, loss);
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (timed) mira::print_train_profile(timed->totals(), sec, steps);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);  // ru_maxrss: peak resident set in KiB (Linux)
  std::printf("{\"tokens_per_s\":%.3f,\"ms_per_step\":%.1f,\"steps\":%lld,\"loss\":%.5f,\"threads\":%d,"
              "\"peak_rss_mib\":%.1f}\n",
              (double)(B * T * steps) / sec, 1e3 * sec / (double)steps, (long long)steps, loss, omp_get_max_threads(),
              ru.ru_maxrss / 1024.0);
  return 0;
}
