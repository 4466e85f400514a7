// Benchmark driver (our side of bench/train_gpu.sh): LoRA training steps (forward + backward +
// clipping + AdamW) of a GPT-2 shaped model on the CUDA backend (src/backend/backend_cuda.h, built
// directly here, without the app's device binding and start-up check). Same model, LoRA and optimiser settings as
// bench/train_cpu_main.cpp. Prints ONE JSON object on stdout:
//   no usable device:  {"skipped":"no CUDA device: <devices_query reason>"}  (exit 0)
//   otherwise:         {"tokens_per_s",...,"n_params","n_lora","n_layer","n_embd","seq","batch","device",...}
// bench/train_gpu.sh turns it (and the peer's) into the benchmark's JSON lines and MFU figures; the
// FLOP formulas live there, in one place for both sides.
// --precision bf16 (default; the peer uses bf16 autocast): frozen base weights in bf16, base GEMMs
// on tensor cores with fp32 accumulation (docs/cuda.md); fp32: the parity mode (cuBLAS PEDANTIC).
//   train_gpu_main [--preset gpt2-124m-shape] [--vocab 50257] [--seq 1024] [--batch 8] [--r 16]
//                  [--steps 10] [--warmup 2] [--precision bf16|fp32] [--peaks "DEVICE NAME"]
// --peaks prints the bench/device_peaks.h entry for a device name and exits (no CUDA call).
// MIRA_PROFILE=1: after the timed steps (whose figures it leaves alone), run the same number of steps
// again through a TimedBackend that synchronises the device around every op and print the per-op
// table on stderr (bench/train_profile.h). Each op is then timed alone, without overlap with the
// host's launch of the next one: the table's total exceeds the step time by the launch gaps.
// Built only with the CUDA backend; run on an H200 (docs/results.md, "Training on a GPU").
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend_cuda.h"
#include "bench/device_peaks.h"
#include "bench/train_bench_options.h"
#include "bench/train_bench_setup.h"
#include "bench/train_profile.h"
#include "model/gpt2_model.h"
#include "runtime/devices.h"

namespace {

void cuda_ok(cudaError_t rc, const char* call) {
  if (rc != cudaSuccess)
    throw std::runtime_error(std::string(call) + ": " + cudaGetErrorName(rc) + ": " + cudaGetErrorString(rc));
}

int run(int argc, char** argv) {
  mira::TrainBenchOptions opt;
  opt.T = 1024, opt.B = 8, opt.steps = 10, opt.warmup = 2;
  mira::WeightPrecision precision = mira::WeightPrecision::BF16;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "train_gpu_main: %s needs a value\n", k.c_str());
      return 2;
    }
    const char* v = argv[i + 1];
    if (mira::train_bench_option(opt, k, v)) continue;
    if (k == "--precision") {
      const std::string pv = v;
      if (pv != "bf16" && pv != "fp32") {
        std::fprintf(stderr, "train_gpu_main: --precision %s: allowed bf16 or fp32\n", v);
        return 2;
      }
      precision = pv == "bf16" ? mira::WeightPrecision::BF16 : mira::WeightPrecision::FP32;
    } else if (k == "--peaks") {
      std::printf("%s\n", mira::device_peak_json(v).c_str());
      return 0;
    } else {
      std::fprintf(stderr, "train_gpu_main: unknown option %s (allowed: --preset --vocab --seq --batch --r --steps "
                           "--warmup --precision --peaks)\n", k.c_str());
      return 2;
    }
  }
  const std::string preset = opt.preset;
  const int64_t vocab = opt.vocab, T = opt.T, B = opt.B, r = opt.r, steps = opt.steps, warmup = opt.warmup;
  if (B < 1 || T < 1 || steps < 1 || warmup < 0) {
    std::fprintf(stderr, "train_gpu_main: need --batch >= 1, --seq >= 1, --steps >= 1, --warmup >= 0\n");
    return 2;
  }
  using namespace mira;
  const DeviceReport rep = devices_query();
  if (rep.devices.empty()) {
    std::printf("{\"skipped\":\"no CUDA device: %s\"}\n", bench_json_escape(rep.unavailable).c_str());
    return 0;
  }
  const CudaDeviceChoice ch = cuda_select_device((int)rep.devices.size(), 0, 1);
  const std::string device = rep.devices[(size_t)ch.device].name;
  const char* prof_env = std::getenv("MIRA_PROFILE");
  const bool profile = prof_env && std::strcmp(prof_env, "1") == 0;
  std::unique_ptr<Backend> be = backend_create_cuda(ch.device);
  TimedBackend* timed = nullptr;
  bool fencing = false;  // the headline steps run unfenced; the profile pass below fences every op
  if (profile) {
    auto t = std::make_unique<TimedBackend>(std::move(be), [&fencing] {
      if (fencing) cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    });
    timed = t.get();
    be = std::move(t);
  }
  const auto t_init = std::chrono::steady_clock::now();
  const Gpt2Config cfg = gpt2_config_preset(preset, vocab);
  Gpt2Model model(*be, gpt2_init_preset(cfg, 0), train_bench_lora(r), train_bench_optim(), 0);
  model.set_base_precision(precision);
  const TrainBenchBatch batch(B, T, vocab);
  const double init_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_init).count();
  std::fprintf(stderr, "train_gpu_main: %s (%s), init %.1f s, adapter %lld floats, B %lld T %lld\n", device.c_str(),
               ch.reason.c_str(), init_s, (long long)model.adapter_size(), (long long)B, (long long)T);
  double loss = 0;
  for (int64_t s = 0; s < warmup; ++s) loss = model.train_step(batch.b, StepContext{0, s});
  cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  // Each step is timed to the end of its GPU work (the AdamW update is asynchronous after the
  // clipping norm comes back): one device synchronisation per step, a few microseconds.
  std::vector<double> ms;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    const auto ts = std::chrono::steady_clock::now();
    loss = model.train_step(batch.b, StepContext{0, warmup + s});
    cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    ms.push_back(1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count());
    std::fprintf(stderr, "step %lld loss %.4f %.1f ms\n", (long long)s, loss, ms.back());
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::sort(ms.begin(), ms.end());
  const double med = ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
  if (timed) {
    fencing = true;
    timed->reset();
    const auto tp = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < steps; ++s) model.train_step(batch.b, StepContext{0, warmup + steps + s});
    const double psec = std::chrono::duration<double>(std::chrono::steady_clock::now() - tp).count();
    print_train_profile(timed->totals(), psec, steps);
  }
  size_t free_b = 0, total_b = 0;
  cuda_ok(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  std::printf("{\"tokens_per_s\":%.3f,\"ms_per_step\":%.3f,\"ms_per_step_median\":%.3f,\"steps\":%lld,"
              "\"loss\":%.5f,\"n_params\":%lld,\"n_lora\":%lld,\"n_layer\":%lld,\"n_embd\":%lld,\"seq\":%lld,"
              "\"batch\":%lld,\"device\":\"%s\",\"device_mem_in_use_gib\":%.3f,\"init_s\":%.2f,"
              "\"precision\":\"%s\"}\n",
              (double)(B * T * steps) / sec, 1e3 * sec / (double)steps, med, (long long)steps, loss,
              (long long)gpt2_param_count(cfg), (long long)model.adapter_size(), (long long)cfg.n_layer,
              (long long)cfg.n_embd, (long long)T, (long long)B, bench_json_escape(device).c_str(),
              (double)(total_b - free_b) / (1024.0 * 1024.0 * 1024.0), init_s,
              precision == WeightPrecision::BF16
                  ? "bf16 frozen base weights, bf16 GEMM and attention operands, fp32 accumulation; fp32 LoRA"
                  : "fp32 parity (cuBLAS PEDANTIC, no TF32)");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_gpu_main: %s\n", e.what());
    return 1;
  }
}
