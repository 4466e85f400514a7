// Adapter exchanges for adapters in DEVICE memory (the CUDA backend), same rules and same rank graph
// as the MPI exchange (comm/exchange.h, comm/mpi_exchange.h):
//  - NcclAdapterExchange: ranks on distinct GPUs. NCCL communicator bootstrapped from MPI (unique
//    id from rank 0, MPI_Bcast, ncclCommInitRank); neighbour exchange as one group of ncclSend /
//    ncclRecv per graph neighbour (one packed block per peer, rule 6) on a dedicated stream ordered
//    against the caller's compute stream with events (no host synchronisation); moves as grouped
//    send/recv in plan order; gather (FedIT) as grouped ncclBroadcast per listed client from its
//    owner into its slot, so the caller still sums in client order (bitwise reproducible);
//    allreduce_sum is the unordered ncclAllReduce for callers that give up reproducibility.
//  - HostStagedAdapterExchange: ranks sharing a GPU (NCCL refuses two ranks on one device): copies
//    the adapters it sends to host memory, runs MpiAdapterExchange, copies what it received back to
//    the device. Synchronises the compute stream (it goes through the host by design).
// With both, every AdapterLookup given to them returns DEVICE pointers (cudaMalloc'd, on this
// rank's device), gather's `out` is a device pointer, and neighbour() returns device pointers.
//
// Built only with the CUDA backend (MIRA_HAVE_CUDA). Used by the round loop on the cuda backend
// through fed/device_store.h. STATUS (docs/cuda.md): on one GPU, NCCL at one rank and the staged
// exchange at 1-4 ranks passed tests/gpu/mpi; multi-GPU NCCL (np >= 2) ran only on the CPU emulator
// (NCCL emulated over MPI, tests/emu/nccl_emu.cpp). Nothing here runs at static initialisation, so
// the binary starts without a driver.
#pragma once
#ifdef MIRA_HAVE_CUDA
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <map>
#include <memory>
#include <vector>

#include "comm/exchange.h"
#include "comm/mpi_exchange.h"
#include "runtime/device_binding.h"

namespace mira {

// cudaMalloc'd floats that grow on demand and are kept (no allocation once the largest round ran).
class DeviceFloats {
 public:
  DeviceFloats() = default;
  ~DeviceFloats();
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  // At least n floats; growing waits for the whole device first (the old buffer may still be in use).
  float* reserve(size_t n);
  float* data() const { return p_; }

 private:
  float* p_ = nullptr;
  size_t cap_ = 0;
};

class NcclAdapterExchange final : public AdapterExchange {
 public:
  // Collective over `comm`. owner, adjacency, P as MpiAdapterExchange. `device`: this rank's CUDA
  // device, different on every rank (device_binding_gather with allow_shared = false ensures it;
  // NCCL itself refuses duplicates). `compute`: the stream that writes and reads the adapters
  // (nullptr = the legacy default stream); every call here starts after the work queued on it so
  // far, and work queued on it after the call starts after the transfer.
  NcclAdapterExchange(MPI_Comm comm, std::vector<int> owner, std::vector<std::vector<int>> adjacency, size_t P,
                      int device, cudaStream_t compute);
  ~NcclAdapterExchange() override;
  NcclAdapterExchange(const NcclAdapterExchange&) = delete;
  NcclAdapterExchange& operator=(const NcclAdapterExchange&) = delete;

  size_t adapter_floats() const override { return P_; }
  int clients() const override { return static_cast<int>(owner_.size()); }
  int rank() const override { return rank_; }
  bool owns(int client) const override { return owner_[client] == rank_; }

  void move(const std::vector<ClientMove>& moves, const AdapterLookup& buffer, size_t count) override;
  void exchange(const std::vector<char>& receiver, const std::vector<char>& provider,
                const AdapterLookup& owned) override;
  const float* neighbour(int client) const override;
  void gather(const std::vector<int>& clients, const AdapterLookup& owned, float* out) override;
  ExchangeStats last_stats() const override { return stats_; }

  // In place: buf (count floats, device) becomes the sum over all ranks (ncclAllReduce). The order
  // of the sum is NCCL's: NOT bitwise reproducible across rank counts or topologies.
  void allreduce_sum(float* buf, size_t count);

  const std::vector<int>& peers() const { return layout_.peers; }
  ncclComm_t nccl_comm() const { return nccl_; }
  cudaStream_t comm_stream() const { return stream_; }

 private:
  void init_resources(MPI_Comm comm);  // stream, events, NCCL communicator (constructor)
  void destroy() noexcept;              // frees what init_resources created (destructor, failed constructor)
  void begin();  // the comm stream waits for the compute stream's queued work
  void end();    // the compute stream waits for the comm stream's queued work

  int rank_ = 0, size_ = 1, device_ = -1;
  size_t P_ = 0;
  std::vector<int> owner_;                    // (K)
  std::vector<std::vector<int>> adjacency_;   // (K, deg)
  CommLayout layout_;
  ncclComm_t nccl_ = nullptr;
  cudaStream_t compute_ = nullptr;            // the caller's (not owned)
  cudaStream_t stream_ = nullptr;             // ours: every NCCL call and packing copy
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  DeviceFloats send_buf_, recv_buf_;          // (adapters, P) packed per peer in plan order
  std::vector<int64_t> recv_slot_;            // (K) adapter index in recv_buf_, -1 if absent
  AdapterLookup owned_;                       // from the last exchange
  ExchangeStats stats_;
};

class HostStagedAdapterExchange final : public AdapterExchange {
 public:
  // Collective over `comm`; for ranks that share a device (or any ranks: it only needs MPI).
  // `device`: this rank's CUDA device; `compute` as for NcclAdapterExchange (synchronised here).
  HostStagedAdapterExchange(MPI_Comm comm, std::vector<int> owner, std::vector<std::vector<int>> adjacency, size_t P,
                            int device, cudaStream_t compute);
  ~HostStagedAdapterExchange() override = default;

  size_t adapter_floats() const override { return mpi_.adapter_floats(); }
  int clients() const override { return mpi_.clients(); }
  int rank() const override { return mpi_.rank(); }
  bool owns(int client) const override { return mpi_.owns(client); }

  void move(const std::vector<ClientMove>& moves, const AdapterLookup& buffer, size_t count) override;
  void exchange(const std::vector<char>& receiver, const std::vector<char>& provider,
                const AdapterLookup& owned) override;
  const float* neighbour(int client) const override;
  void gather(const std::vector<int>& clients, const AdapterLookup& owned, float* out) override;
  ExchangeStats last_stats() const override { return mpi_.last_stats(); }

 private:
  float* host_slot(std::map<int, std::vector<float>>& m, int client, size_t n);
  void download(float* host, const float* dev, size_t n);
  void upload(float* dev, const float* host, size_t n);

  MpiAdapterExchange mpi_;
  int device_ = -1;
  cudaStream_t compute_ = nullptr;
  std::map<int, std::vector<float>> host_;    // per client: host copies (sent, moved, received)
  std::vector<float> host_gather_;            // (n, P) gather result before upload
  DeviceFloats recv_buf_;                     // (received, P) device copies of received adapters
  std::vector<int64_t> recv_slot_;            // (K) adapter index in recv_buf_, -1 if absent
  AdapterLookup owned_;                       // from the last exchange
};

// The exchange for device-resident adapters: NCCL when every rank has its own GPU, host-staged MPI
// when some ranks share one (binding.any_shared, the same on every rank after
// device_binding_gather, so every rank picks the same kind). Collective over `comm`.
std::unique_ptr<AdapterExchange> comm_create_device_exchange(MPI_Comm comm, std::vector<int> owner,
                                                             std::vector<std::vector<int>> adjacency, size_t P,
                                                             const DeviceBinding& binding, cudaStream_t compute);

}  // namespace mira
#endif  // MIRA_HAVE_CUDA
