// Shared by the MPI + GPU tests (tests/gpu/mpi): the collective skip decision (every rank skips
// alike, so no rank waits in a collective another one skipped), adapters in device memory, and
// checks that run a device exchange (NCCL or host-staged) next to the host MpiAdapterExchange on
// the same integer-valued adapters and compare every bit: neighbour exchange over rounds under
// sampling, moves to workers and back, the FedIT gather.
#pragma once
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/mpi_exchange.h"
#include "fed/aggregate.h"
#include "fed/assignment.h"
#include "fed/graph.h"
#include "fed/sampler.h"
#include "runtime/device_binding.h"
#include "runtime/devices.h"

#ifdef MIRA_HAVE_CUDA
#include <cuda_runtime.h>

#include "comm/nccl_exchange.h"
#include "runtime/check_cuda.h"
#endif

namespace mira_gpu_mpi {

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
inline int world_size() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

// "" when every rank can run the test, else why not; the same verdict on every rank (a collective).
// need_own_gpu: NCCL needs one GPU per rank, so ranks sharing one GPU skip. `binding` receives this
// rank's device binding (sharing allowed unless need_own_gpu).
inline std::string skip_reason(bool need_own_gpu, mira::DeviceBinding* binding) {
  std::string why;
#ifndef MIRA_HAVE_CUDA
  (void)need_own_gpu;
  (void)binding;
  why = "no CUDA device: this build has no CUDA backend (configure with -DMIRA_CUDA=ON on a machine with nvcc)";
#else
  const mira::DeviceReport rep = mira::devices_query();
  const mira::DeviceBinding b = mira::device_binding_gather(MPI_COMM_WORLD, mira::device_binding_uuids(rep),
                                                            mira::device_binding_visible_env(),
                                                            mira::DeviceBindingPolicy{!need_own_gpu, ""});
  if (binding) *binding = b;
  if (b.device < 0)
    why = "no CUDA device: " + (rep.devices.empty() ? rep.unavailable : b.reason);
  else if (!b.refusal.empty())
    why = "NCCL needs one GPU per rank and " + std::to_string(b.sharing_local_ranks.size()) +
          " ranks share one here (multi-GPU NCCL cannot run on a machine with fewer GPUs than ranks): " + b.refusal;
#endif
  int mine = why.empty() ? 0 : 1, any = 0;
  MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (any && why.empty()) why = "another rank cannot run this test (rank 0 prints its reason)";
  return why;
}

// Integer-valued adapter element i of client c in round t: every sum and copy is exact.
inline float adapter_value(int c, size_t i, int64_t t = 0) {
  return static_cast<float>(static_cast<int>((c * 131 + i * 17 + t * 29) % 61) - 30);
}

inline std::vector<std::pair<std::string, mira::Graph>> test_graphs(int K) {
  std::vector<std::pair<std::string, mira::Graph>> g;
  g.emplace_back("ring", mira::graph_ring(K));
  g.emplace_back("complete", mira::graph_complete(K));
  g.emplace_back("random", mira::graph_random(K, 42));
  std::vector<int> family(K);
  for (int k = 0; k < K; ++k) family[k] = k % 3;
  g.emplace_back("task", mira::graph_task(family, 1.0, 0.0));
  return g;
}

// One rank's adapters on the host (for the MPI reference).
struct HostStore {
  std::map<int, std::vector<float>> owned, slots;
  mira::AdapterLookup owned_lookup() {
    return [this](int c) -> float* {
      auto it = owned.find(c);
      return it == owned.end() ? nullptr : it->second.data();
    };
  }
  mira::AdapterLookup any_lookup(size_t P) {
    return [this, P](int c) -> float* {
      auto it = owned.find(c);
      if (it != owned.end()) return it->second.data();
      auto& s = slots[c];
      s.resize(P);
      return s.data();
    };
  }
};

#ifdef MIRA_HAVE_CUDA

// One rank's adapters in device memory: owned buffers and worker slots (cudaMalloc'd), a pinned
// host staging area per client so copies on the compute stream are truly asynchronous.
struct DeviceStore {
  size_t P = 0;
  cudaStream_t compute = nullptr;
  std::map<int, float*> owned, slots;
  std::map<int, float*> pinned;  // (P) per client
  float* read_stage = nullptr;   // (P) pinned, allocated once: no allocation (which may synchronise
                                 // the device and hide a missing event) between an exchange and a read
  DeviceStore(size_t P_, cudaStream_t s) : P(P_), compute(s) {
    MIRA_CHECK_CUDA(cudaMallocHost(reinterpret_cast<void**>(&read_stage), P * sizeof(float)));
  }
  ~DeviceStore() {
    for (auto& kv : owned) cudaFree(kv.second);
    for (auto& kv : slots) cudaFree(kv.second);
    for (auto& kv : pinned) cudaFreeHost(kv.second);
    if (read_stage) cudaFreeHost(read_stage);
  }
  DeviceStore(const DeviceStore&) = delete;
  DeviceStore& operator=(const DeviceStore&) = delete;
  static float* dalloc(size_t n) {
    float* p = nullptr;
    MIRA_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(float)));
    return p;
  }
  float* host(int c) {
    float*& p = pinned[c];
    if (!p) MIRA_CHECK_CUDA(cudaMallocHost(reinterpret_cast<void**>(&p), P * sizeof(float)));
    return p;
  }
  mira::AdapterLookup owned_lookup() {
    return [this](int c) -> float* {
      auto it = owned.find(c);
      return it == owned.end() ? nullptr : it->second;
    };
  }
  mira::AdapterLookup any_lookup() {
    return [this](int c) -> float* {
      auto it = owned.find(c);
      if (it != owned.end()) return it->second;
      float*& s = slots[c];
      if (!s) s = dalloc(P);
      return s;
    };
  }
  // Waits for the compute stream: the pinned staging areas may be rewritten afterwards.
  void quiesce() { MIRA_CHECK_CUDA(cudaStreamSynchronize(compute)); }
  // Queued on the compute stream, not waited for (the exchange must order itself after it). The
  // pinned area of client c must not be in use by an earlier copy (quiesce() first).
  void set_async(float* dev, int c, const std::vector<float>& v) {
    std::memcpy(host(c), v.data(), P * sizeof(float));
    MIRA_CHECK_CUDA(cudaMemcpyAsync(dev, host(c), P * sizeof(float), cudaMemcpyHostToDevice, compute));
  }
  // Queued on the compute stream after whatever was queued there, then waited for.
  std::vector<float> read(const float* dev) {
    std::vector<float> v(P);
    MIRA_CHECK_CUDA(cudaMemcpyAsync(read_stage, dev, P * sizeof(float), cudaMemcpyDeviceToHost, compute));
    MIRA_CHECK_CUDA(cudaStreamSynchronize(compute));
    std::memcpy(v.data(), read_stage, P * sizeof(float));
    return v;
  }
};

// Both stores hold adapter_value(c, i, t) for every owned client; the device one asynchronously.
inline void fill_owned(HostStore& hs, DeviceStore& ds, const std::vector<int>& owner, int64_t t) {
  const size_t P = ds.P;
  ds.quiesce();
  for (int c = 0; c < static_cast<int>(owner.size()); ++c) {
    if (owner[c] != world_rank()) continue;
    std::vector<float>& h = hs.owned[c];
    h.resize(P);
    for (size_t i = 0; i < P; ++i) h[i] = adapter_value(c, i, t);
    float*& d = ds.owned[c];
    if (!d) d = DeviceStore::dalloc(P);
    ds.set_async(d, c, h);
  }
}

using DeviceExchangeFactory =
    std::function<std::unique_ptr<mira::AdapterExchange>(const std::vector<int>& owner, const mira::Graph& g, size_t P)>;

inline bool same_bits(const std::vector<float>& a, const float* b, size_t P) {
  return std::memcmp(a.data(), b, P * sizeof(float)) == 0;
}

inline void expect_same_stats(const mira::ExchangeStats& d, const mira::ExchangeStats& h, const std::string& what) {
  EXPECT_EQ(d.adapters_sent, h.adapters_sent) << what;
  EXPECT_EQ(d.adapters_received, h.adapters_received) << what;
  EXPECT_EQ(d.bytes_sent, h.bytes_sent) << what;
  EXPECT_EQ(d.bytes_received, h.bytes_received) << what;
}

// Neighbour exchange over rounds under sampling (both neighbour modes), device vs host MPI. The
// owned adapters change every round right before the exchange, queued on the compute stream and
// not waited for; the received ones are read back on the compute stream. So the exchange's own
// ordering is what makes the values right.
inline void check_neighbours(const DeviceExchangeFactory& make, cudaStream_t compute, const std::vector<int>& Ks,
                             size_t P, const std::string& what) {
  const int R = world_size(), me = world_rank();
  for (int K : Ks)
    for (auto& [name, g] : test_graphs(K)) {
      const std::vector<int> owner = mira::assignment_owners(K, R);
      std::unique_ptr<mira::AdapterExchange> dev = make(owner, g, P);
      mira::MpiAdapterExchange host(MPI_COMM_WORLD, owner, g.neighbours, P);
      HostStore hs;
      DeviceStore ds(P, compute);
      int64_t t = 0;
      for (double f : {1.0, 0.4})
        for (mira::NeighbourMode mode : {mira::NeighbourMode::SAMPLED, mira::NeighbourMode::ALL_LATEST})
          for (int64_t round = 0; round < 2; ++round, ++t) {
            const std::string at = what + " " + name + " K=" + std::to_string(K) + " P=" + std::to_string(P) +
                                   " f=" + std::to_string(f) + " " + mira::fed_neighbour_mode_name(mode) +
                                   " round " + std::to_string(round);
            fill_owned(hs, ds, owner, t);
            const std::vector<int> s = mira::sampler_sample(3, t, K, mira::sampler_count(K, f));
            std::vector<char> recv(K, 0);
            for (int k : s) recv[k] = 1;
            const std::vector<char> prov = mode == mira::NeighbourMode::SAMPLED ? recv : std::vector<char>(K, 1);
            dev->exchange(recv, prov, ds.owned_lookup());
            host.exchange(recv, prov, hs.owned_lookup());
            for (int l = 0; l < K; ++l) {
              const float* d = dev->neighbour(l);
              const float* h = host.neighbour(l);
              if (owner[l] == me) {
                EXPECT_EQ(d, ds.owned[l]) << at << ": same-rank pairs use the owner's device buffer";
                continue;
              }
              EXPECT_EQ(d != nullptr, h != nullptr) << at << " client " << l;
              if (d && h) {
                const std::vector<float> got = ds.read(d);
                EXPECT_TRUE(same_bits(got, h, P)) << at << " client " << l << ": received adapter differs";
              }
            }
            expect_same_stats(dev->last_stats(), host.last_stats(), at);
          }
    }
}

// Moves to workers and back (assignment_plan forces moves when there are several ranks).
inline void check_moves(const DeviceExchangeFactory& make, cudaStream_t compute, const std::string& what) {
  const int R = world_size(), K = 9;
  const size_t P = 4;
  const std::vector<int> owner = mira::assignment_owners(K, R);
  const mira::Graph g = mira::graph_ring(K);
  std::unique_ptr<mira::AdapterExchange> dev = make(owner, g, P);
  mira::MpiAdapterExchange host(MPI_COMM_WORLD, owner, g.neighbours, P);
  HostStore hs;
  DeviceStore ds(P, compute);
  fill_owned(hs, ds, owner, 0);
  const mira::Assignment a = mira::assignment_plan({0, 1, 2, 3, 4}, K, R);
  dev->move(a.to_workers, ds.any_lookup(), P);
  host.move(a.to_workers, hs.any_lookup(P), P);
  expect_same_stats(dev->last_stats(), host.last_stats(), what + " to workers");
  for (const mira::ClientMove& mv : a.to_workers)
    if (mv.to == world_rank()) {
      const std::vector<float> got = ds.read(ds.slots.at(mv.client));
      EXPECT_TRUE(same_bits(got, hs.slots.at(mv.client).data(), P)) << what << ": moved client " << mv.client;
    }
  // "Trained" on the worker, then back to the owner.
  ds.quiesce();
  for (auto& [c, slot] : ds.slots) ds.set_async(slot, c, std::vector<float>(P, static_cast<float>(100 + c)));
  dev->move(a.to_owners, ds.any_lookup(), P);
  host.move(a.to_owners, hs.any_lookup(P), P);
  expect_same_stats(dev->last_stats(), host.last_stats(), what + " to owners");
  for (const mira::ClientMove& mv : a.to_owners)
    if (mv.to == world_rank()) {
      EXPECT_EQ(ds.read(ds.owned.at(mv.client)), std::vector<float>(P, static_cast<float>(100 + mv.client)))
          << what << ": client " << mv.client << " back at its owner";
    }
  dev->move({}, ds.any_lookup(), P);  // an empty plan is a no-op
  EXPECT_EQ(dev->last_stats().adapters_sent + dev->last_stats().adapters_received, 0);
}

// FedIT gather: every rank gets the listed adapters in list order, bit for bit.
inline void check_gather(const DeviceExchangeFactory& make, cudaStream_t compute, const std::string& what) {
  const int R = world_size();
  const size_t P = 7;
  for (int K : {1, 3, 8}) {
    const std::vector<int> owner = mira::assignment_owners(K, R);
    const mira::Graph g = mira::graph_complete(K);
    std::unique_ptr<mira::AdapterExchange> dev = make(owner, g, P);
    mira::MpiAdapterExchange host(MPI_COMM_WORLD, owner, g.neighbours, P);
    HostStore hs;
    DeviceStore ds(P, compute);
    fill_owned(hs, ds, owner, 5);
    std::vector<int> reversed(K);
    for (int k = 0; k < K; ++k) reversed[k] = K - 1 - k;
    for (const std::vector<int>& list : {mira::sampler_sample(5, 1, K, mira::sampler_count(K, 0.4)), reversed}) {
      const size_t n = list.size();
      float* out = DeviceStore::dalloc(n * P + 1);
      std::vector<float> href(n * P);
      dev->gather(list, ds.owned_lookup(), out);
      host.gather(list, hs.owned_lookup(), href.data());
      for (size_t i = 0; i < n; ++i)
        EXPECT_TRUE(same_bits(ds.read(out + i * P), &href[i * P], P))
            << what << " K=" << K << ": slot " << i << " (client " << list[i] << ")";
      expect_same_stats(dev->last_stats(), host.last_stats(), what + " gather K=" + std::to_string(K));
      cudaFree(out);
    }
  }
}

// The fixture of a device exchange test: skips (with the agreed reason) unless every rank has a
// usable device (its own one when NeedOwnGpu: NCCL refuses two ranks on one GPU), then binds it
// and creates a compute stream; factory() makes an Exchange over it.
template <class Exchange, bool NeedOwnGpu>
class DeviceExchangeFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = skip_reason(NeedOwnGpu, &binding_);
    if (!why.empty()) GTEST_SKIP() << why;
    MIRA_CHECK_CUDA(cudaSetDevice(binding_.device));
    MIRA_CHECK_CUDA(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking));
    if (world_rank() == 0) std::printf("[ device   ] %s\n", binding_.reason.c_str());
  }
  void TearDown() override {
    if (compute_) cudaStreamDestroy(compute_);
  }
  DeviceExchangeFactory factory() {
    return [this](const std::vector<int>& owner, const mira::Graph& g, size_t P) {
      return std::unique_ptr<mira::AdapterExchange>(
          new Exchange(MPI_COMM_WORLD, owner, g.neighbours, P, binding_.device, compute_));
    };
  }
  mira::DeviceBinding binding_;
  cudaStream_t compute_ = nullptr;
};

#endif  // MIRA_HAVE_CUDA

}  // namespace mira_gpu_mpi
