// Benchmark driver (not a test), the device mode of the exchange benchmark (bench/exchange_device.sh,
// `bench/run.sh exchange_device`): time of the adapter exchanges for adapters in DEVICE memory
// (src/comm/nccl_exchange.h) at the paper's adapter sizes, beside the host MpiAdapterExchange:
//  - NcclAdapterExchange when every rank has its own GPU (device_binding_gather decides, as a run
//    would), HostStagedAdapterExchange always (it also runs when ranks share one GPU);
//  - neighbour-exchange round (ring, one client per rank, every client sampled) for np >= 2: staged
//    vs MpiAdapterExchange on host buffers (the staging cost) and NCCL vs staged where NCCL can run;
//  - FedIT gather of --clients adapters (block-distributed owners) on any np, np 1 included: with one
//    rank the NCCL gather is a broadcast-into-slot on a 1-rank communicator (a device copy through
//    NCCL) and the staged one a device -> host -> device round trip;
//  - np 1 with NCCL: a raw self ncclSend/ncclRecv of one adapter on the exchange's communicator vs
//    the staged path's cudaMemcpy device -> pageable host -> device of the same bytes.
// Adapter sizes (--models): GPT-2 124M and GPT-2 large, r 16 on the paper targets (c_attn,
// attn.c_proj, mlp.c_proj): P = L r 11 C floats = 1,622,016 (6.5 MB) and 8,110,080 (32.4 MB).
// Each sample is the slowest rank's time of one call, stopped after the compute stream is
// synchronised (so NCCL's asynchronous work is included); methods are interleaved; median reported.
// Rank 0 prints one JSON line per figure on stdout, text on stderr. Without a device on some rank:
// one line {"bench":"exchange_device","skipped":"no CUDA device: ..."}, exit 0.
//   bench_exchange_device [--models gpt2-124m,gpt2-large] [--r 16] [--clients 8] [--min-iters 5]
//                         [--max-iters 100] [--budget 0.3]
// Built only with the CUDA backend; run on an H200 at np 1 (docs/results.md, "Training on a GPU").
#include <cuda_runtime.h>
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/device_peaks.h"
#include "bench/bench_timing.h"
#include "comm/mpi_exchange.h"
#include "comm/nccl_exchange.h"
#include "fed/assignment.h"
#include "fed/graph.h"
#include "runtime/check_cuda.h"
#include "runtime/check_mpi.h"
#include "runtime/device_binding.h"
#include "runtime/devices.h"
#include "runtime/error.h"

namespace {

using namespace mira;

struct Options {
  std::vector<std::string> models{"gpt2-124m", "gpt2-large"};
  int64_t r = 16;
  int clients = 8;
  int min_iters = 5, max_iters = 100;
  double budget = 0.3;  // seconds of measured calls per method and figure, once min_iters are done
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  size_t p = 0;
  while (p <= s.size()) {
    size_t q = s.find(',', p);
    if (q == std::string::npos) q = s.size();
    if (q > p) v.push_back(s.substr(p, q - p));
    p = q + 1;
  }
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) throw UserError(a + " needs a value");
      return argv[++i];
    };
    if (a == "--models") o.models = split(val());
    else if (a == "--r") o.r = std::stoll(val());
    else if (a == "--clients") o.clients = std::stoi(val());
    else if (a == "--min-iters") o.min_iters = std::stoi(val());
    else if (a == "--max-iters") o.max_iters = std::stoi(val());
    else if (a == "--budget") o.budget = std::stod(val());
    else throw UserError("unknown option " + a + " (allowed: --models --r --clients --min-iters --max-iters --budget)");
  }
  if (o.r < 1 || o.clients < 1 || o.min_iters < 1 || o.max_iters < o.min_iters)
    throw UserError("need --r >= 1, --clients >= 1, 1 <= --min-iters <= --max-iters");
  return o;
}

// (layers, width) of a model name; P = L r (C + 3C + C + C + 4C + C) = 11 L r C.
std::pair<int64_t, int64_t> model_shape(const std::string& m) {
  if (m == "gpt2-124m") return {12, 768};
  if (m == "gpt2-medium") return {24, 1024};
  if (m == "gpt2-large") return {36, 1280};
  if (m == "gpt2-xl") return {48, 1600};
  throw UserError("unknown model '" + m + "' (allowed: gpt2-124m, gpt2-medium, gpt2-large, gpt2-xl)");
}

// Device buffers of P floats per client, filled with the client id (checked after the calls).
struct DeviceAdapters {
  std::vector<float*> buf;  // (K), nullptr where this rank owns no copy
  size_t P = 0;
  DeviceAdapters(const std::vector<int>& owner, int rank, size_t p) : buf(owner.size(), nullptr), P(p) {
    for (size_t c = 0; c < owner.size(); ++c) {
      if (owner[c] != rank) continue;
      MIRA_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&buf[c]), P * sizeof(float)));
      const std::vector<float> h(P, (float)c);
      MIRA_CHECK_CUDA(cudaMemcpy(buf[c], h.data(), P * sizeof(float), cudaMemcpyHostToDevice));
    }
    // A pageable cudaMemcpy may return before its DMA ends, on the legacy default stream, which the
    // exchanges' non-blocking streams do not wait for: finish it before any exchange reads buf.
    MIRA_CHECK_CUDA(cudaDeviceSynchronize());
  }
  ~DeviceAdapters() {
    for (float* p : buf) cudaFree(p);
  }
  AdapterLookup lookup() {
    return [this](int c) -> float* { return buf[(size_t)c]; };
  }
};

float first_float(const float* dev) {
  float x = -1;
  MIRA_CHECK_CUDA(cudaMemcpy(&x, dev, sizeof x, cudaMemcpyDeviceToHost));
  return x;
}

// Interleaved timing (bench/bench_timing.h), each call ending with the compute stream synchronised.
std::vector<double> time_interleaved(const Options& o, cudaStream_t compute,
                                     const std::vector<std::function<void()>>& methods) {
  std::vector<std::function<void()>> synced;
  for (const auto& m : methods)
    synced.push_back([&m, compute] {
      m();
      MIRA_CHECK_CUDA(cudaStreamSynchronize(compute));
    });
  return mira::time_interleaved(MPI_COMM_WORLD, o.min_iters, o.max_iters, o.budget, synced);
}

void json(const std::string& metric, double value, const char* unit, const char* peer, double peer_value,
          double ratio, const std::string& config, const std::string& device) {
  char v[48], pv[48], rv[48];
  std::snprintf(v, sizeof v, "%.6g", value);
  std::snprintf(pv, sizeof pv, "%.6g", peer_value);
  std::snprintf(rv, sizeof rv, "%.3f", ratio);
  std::printf("{\"bench\":\"exchange_device\",\"metric\":\"%s\",\"value\":%s,\"unit\":\"%s\",\"peer\":\"%s\","
              "\"peer_value\":%s,\"ratio\":%s,\"device\":\"%s\",\"config\":\"%s\"}\n",
              metric.c_str(), v, unit, peer, pv, rv, bench_json_escape(device).c_str(), bench_json_escape(config).c_str());
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const Options o = parse(argc, argv);
  const DeviceReport rep = devices_query();
  // The binding a run would make, sharing allowed: NCCL only when no two ranks share a GPU.
  const DeviceBinding bind = device_binding_gather(MPI_COMM_WORLD, device_binding_uuids(rep),
                                                   device_binding_visible_env(), DeviceBindingPolicy{true, ""});
  int mine = bind.device < 0 ? 1 : 0, any = 0;
  MIRA_CHECK_MPI(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  if (any) {
    const std::string why = bind.device < 0 ? (rep.devices.empty() ? rep.unavailable : bind.reason)
                                            : "another rank has no CUDA device";
    if (rank == 0)  // rank 0's reason (every rank of a one-node job sees the same devices)
      std::printf("{\"bench\":\"exchange_device\",\"skipped\":\"no CUDA device: %s\"}\n", bench_json_escape(why).c_str());
    return 0;
  }
  const bool nccl_ok = !bind.any_shared;
  const std::string device = rep.devices[(size_t)bind.device].name;
  MIRA_CHECK_CUDA(cudaSetDevice(bind.device));
  cudaStream_t compute = nullptr;
  MIRA_CHECK_CUDA(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
  if (rank == 0)
    std::fprintf(stderr, "exchange_device: np %d on %s; %s; NCCL %s\n", size, device.c_str(), bind.reason.c_str(),
                 nccl_ok ? "used (one GPU per rank)" : "not possible (ranks share a GPU): staged vs host MPI only");
  const std::string base = "np" + std::to_string(size) + (bind.any_shared ? " ranks-share-one-GPU" : " one-GPU-per-rank");

  for (const std::string& m : o.models) {
    const auto [L, C] = model_shape(m);
    const size_t P = (size_t)(11 * L * o.r * C);
    const double mb = (double)P * 4 / 1e6;
    const std::string cfg = base + " " + m + " r" + std::to_string(o.r) + " P" + std::to_string(P) + " (" +
                            std::to_string((int)(mb + 0.5)) + " MB per adapter)";

    // Neighbour exchange round: ring, one client per rank, every client sampled (np >= 2).
    if (size >= 2) {
      const int K = size;
      const std::vector<int> owner = assignment_owners(K, size);
      const Graph ring = graph_ring(K);
      const std::vector<char> all((size_t)K, 1);
      DeviceAdapters dev(owner, rank, P);
      std::vector<float> host(P, (float)rank);
      AdapterLookup host_owned = [&](int c) -> float* { return c == rank ? host.data() : nullptr; };
      HostStagedAdapterExchange staged(MPI_COMM_WORLD, owner, ring.neighbours, P, bind.device, compute);
      MpiAdapterExchange mpi(MPI_COMM_WORLD, owner, ring.neighbours, P);
      std::unique_ptr<NcclAdapterExchange> nccl;
      if (nccl_ok) nccl.reset(new NcclAdapterExchange(MPI_COMM_WORLD, owner, ring.neighbours, P, bind.device, compute));
      std::vector<std::function<void()>> methods = {[&] { staged.exchange(all, all, dev.lookup()); },
                                                    [&] { mpi.exchange(all, all, host_owned); }};
      if (nccl) methods.push_back([&] { nccl->exchange(all, all, dev.lookup()); });
      const std::vector<double> t = time_interleaved(o, compute, methods);
      for (int l : ring.neighbours[(size_t)rank]) {  // the adapters really arrived
        MIRA_CHECK(staged.neighbour(l) && first_float(staged.neighbour(l)) == (float)l, "staged neighbour " + std::to_string(l));
        if (nccl) MIRA_CHECK(nccl->neighbour(l) && first_float(nccl->neighbour(l)) == (float)l, "nccl neighbour " + std::to_string(l));
      }
      if (rank == 0) {
        const std::string c = cfg + " ring K" + std::to_string(K) + " deg" + std::to_string(ring.neighbours[0].size());
        std::fprintf(stderr, "round %s: staged %.3f ms, host MPI %.3f ms%s\n", c.c_str(), t[0] * 1e3, t[1] * 1e3,
                     nccl ? (", NCCL " + std::to_string(t[2] * 1e3) + " ms").c_str() : "");
        json("round_ms_staged", t[0] * 1e3, "ms", "MpiAdapterExchange (host buffers)", t[1] * 1e3, t[1] / t[0], c, device);
        if (nccl) json("round_ms_nccl", t[2] * 1e3, "ms", "HostStagedAdapterExchange", t[0] * 1e3, t[0] / t[2], c, device);
      }
    }

    // FedIT gather of --clients adapters (any np, np 1 included).
    {
      const int K = o.clients;
      const std::vector<int> owner = assignment_owners(K, size);
      const Graph ring = graph_ring(K);
      std::vector<int> list((size_t)K);
      for (int c = 0; c < K; ++c) list[(size_t)c] = c;
      DeviceAdapters dev(owner, rank, P);
      std::vector<std::vector<float>> host((size_t)K);
      for (int c = 0; c < K; ++c)
        if (owner[(size_t)c] == rank) host[(size_t)c].assign(P, (float)c);
      AdapterLookup host_owned = [&](int c) -> float* { return host[(size_t)c].empty() ? nullptr : host[(size_t)c].data(); };
      float* out = nullptr;
      MIRA_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&out), (size_t)K * P * sizeof(float)));
      std::vector<float> host_out((size_t)K * P);
      HostStagedAdapterExchange staged(MPI_COMM_WORLD, owner, ring.neighbours, P, bind.device, compute);
      MpiAdapterExchange mpi(MPI_COMM_WORLD, owner, ring.neighbours, P);
      std::unique_ptr<NcclAdapterExchange> nccl;
      if (nccl_ok) nccl.reset(new NcclAdapterExchange(MPI_COMM_WORLD, owner, ring.neighbours, P, bind.device, compute));
      std::vector<std::function<void()>> methods = {[&] { staged.gather(list, dev.lookup(), out); },
                                                    [&] { mpi.gather(list, host_owned, host_out.data()); }};
      if (nccl) methods.push_back([&] { nccl->gather(list, dev.lookup(), out); });
      const std::vector<double> t = time_interleaved(o, compute, methods);
      for (int c = 0; c < K; ++c)
        MIRA_CHECK(first_float(out + (size_t)c * P) == (float)c, "gather slot " + std::to_string(c));
      cudaFree(out);
      if (rank == 0) {
        const std::string c = cfg + " gather of K" + std::to_string(K) + " adapters";
        std::fprintf(stderr, "gather %s: staged %.3f ms, host MPI %.3f ms%s\n", c.c_str(), t[0] * 1e3, t[1] * 1e3,
                     nccl ? (", NCCL " + std::to_string(t[2] * 1e3) + " ms").c_str() : "");
        json("gather_ms_staged", t[0] * 1e3, "ms", "MpiAdapterExchange (host buffers)", t[1] * 1e3, t[1] / t[0], c, device);
        if (nccl) json("gather_ms_nccl", t[2] * 1e3, "ms", "HostStagedAdapterExchange", t[0] * 1e3, t[0] / t[2], c, device);
      }
    }

    // np 1 with NCCL: one adapter to itself through NCCL vs through pageable host memory.
    if (size == 1 && nccl_ok) {
      const std::vector<int> owner{0};
      NcclAdapterExchange nccl(MPI_COMM_WORLD, owner, graph_ring(1).neighbours, P, bind.device, compute);
      float *a = nullptr, *b = nullptr;
      MIRA_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&a), P * sizeof(float)));
      MIRA_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&b), P * sizeof(float)));
      std::vector<float> h(P, 3.0f);
      MIRA_CHECK_CUDA(cudaMemcpy(a, h.data(), P * sizeof(float), cudaMemcpyHostToDevice));
      MIRA_CHECK_CUDA(cudaDeviceSynchronize());  // as in DeviceAdapters: before NCCL's stream reads a
      cudaStream_t cs = nccl.comm_stream();
      const std::vector<double> t = time_interleaved(
          o, compute,
          {[&] {
             MIRA_CHECK_NCCL(ncclGroupStart());
             MIRA_CHECK_NCCL(ncclSend(a, P, ncclFloat, 0, nccl.nccl_comm(), cs));
             MIRA_CHECK_NCCL(ncclRecv(b, P, ncclFloat, 0, nccl.nccl_comm(), cs));
             MIRA_CHECK_NCCL(ncclGroupEnd());
             MIRA_CHECK_CUDA(cudaStreamSynchronize(cs));
           },
           [&] {
             MIRA_CHECK_CUDA(cudaMemcpyAsync(h.data(), a, P * sizeof(float), cudaMemcpyDeviceToHost, compute));
             MIRA_CHECK_CUDA(cudaMemcpyAsync(b, h.data(), P * sizeof(float), cudaMemcpyHostToDevice, compute));
           }});
      MIRA_CHECK(first_float(b) == 3.0f, "self send/receive contents");
      cudaFree(a);
      cudaFree(b);
      const double bytes = (double)P * 4;
      std::fprintf(stderr, "self copy %s: NCCL %.3f ms (%.1f GB/s), device->host->device %.3f ms (%.1f GB/s)\n",
                   cfg.c_str(), t[0] * 1e3, bytes / t[0] / 1e9, t[1] * 1e3, bytes / t[1] / 1e9);
      json("self_sendrecv_GBps", bytes / t[0] / 1e9, "GB/s", "cudaMemcpy D2H+H2D (pageable, the staged path)",
           bytes / t[1] / 1e9, t[1] / t[0], cfg + " one adapter to itself", device);
    }
  }
  cudaStreamDestroy(compute);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return mira::bench_main(argc, argv, "bench_exchange_device", run); }
