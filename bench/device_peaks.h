// Device peak figures for the GPU benchmarks (bench/kernels_main.cpp, bench/train_gpu_main.cpp and,
// through `--peaks NAME` of those binaries, the peer side of bench/train_gpu.sh): one small table
// keyed on the CUDA device name, so every GB/s, TFLOP/s and MFU figure is a fraction of the same
// numbers. Header-only, no CUDA: it is compiled and tested (`--peaks NAME`) in every build.
//
// Figures are NVIDIA's datasheet peaks (dense, i.e. without 2:4 sparsity):
//   H100 SXM5 80GB (name "NVIDIA H100 80GB HBM3"): HBM3 3.35 TB/s, bf16 tensor 989 TFLOP/s,
//                                                  fp32 (non-tensor, SIMT) 67 TFLOP/s
//   H100 PCIe 80GB (name "NVIDIA H100 PCIe"):      HBM2e 2.0 TB/s, bf16 756, fp32 51
//   H200 SXM 141GB (name "NVIDIA H200"):           HBM3e 4.8 TB/s, bf16 989, fp32 67
// Anything else (H100 NVL, H200 NVL, A100, ...) is unknown: the benchmarks then print null peaks
// and null fractions rather than guess.
#pragma once
#include <cstdio>
#include <string>

namespace mira {

struct DevicePeak {
  const char* key;           // short name printed in the JSON ("H100 SXM")
  double hbm_GBps;           // device memory bandwidth, 1e9 bytes/s
  double bf16_dense_TFLOPs;  // bf16 tensor-core peak, dense
  double fp32_TFLOPs;        // fp32 without tensor cores (what CUBLAS_PEDANTIC_MATH sgemm can use)
};

// The table entry for a CUDA device name (cudaDeviceProp::name), or nullptr when unknown.
inline const DevicePeak* device_peak_lookup(const std::string& name) {
  static const DevicePeak h100_sxm{"H100 SXM", 3350.0, 989.0, 67.0};
  static const DevicePeak h100_pcie{"H100 PCIe", 2000.0, 756.0, 51.0};
  static const DevicePeak h200{"H200", 4800.0, 989.0, 67.0};
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("NVL")) return nullptr;  // H100 NVL / H200 NVL have other clocks and limits: not in the table
  if (has("H100") && has("PCIe")) return &h100_pcie;
  if (has("H100") && (has("SXM") || has("HBM3"))) return &h100_sxm;
  if (has("H200")) return &h200;
  return nullptr;
}

// s with the characters JSON needs escaped.
inline std::string bench_json_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      o += '\\';
      o += ch;
    } else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += ch;
    }
  }
  return o;
}

// {"device":NAME,"peak":KEY|null,"hbm_GBps":..|null,"bf16_dense_TFLOPs":..|null,"fp32_TFLOPs":..|null}
inline std::string device_peak_json(const std::string& name) {
  const DevicePeak* p = device_peak_lookup(name);
  char buf[256];
  if (!p) return "{\"device\":\"" + bench_json_escape(name) +
                 "\",\"peak\":null,\"hbm_GBps\":null,\"bf16_dense_TFLOPs\":null,\"fp32_TFLOPs\":null}";
  std::snprintf(buf, sizeof buf, "\"peak\":\"%s\",\"hbm_GBps\":%.0f,\"bf16_dense_TFLOPs\":%.0f,\"fp32_TFLOPs\":%.0f}",
                p->key, p->hbm_GBps, p->bf16_dense_TFLOPs, p->fp32_TFLOPs);
  return "{\"device\":\"" + bench_json_escape(name) + "\"," + buf;
}

}  // namespace mira
