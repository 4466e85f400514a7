// The device-resident client state store (device_store.h): one cudaMalloc'd block for the owned
// states, a pool of visiting slots, the FedIT global adapter and the rollback snapshot, all on the
// backend's stream; the exchange from comm/nccl_exchange.h and the kernels through
// fed/aggregate_device.h.
#include "fed/device_store.h"

#include "runtime/error.h"

#ifdef MIRA_HAVE_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <string>

#include "backend/backend.h"
#include "comm/nccl_exchange.h"
#include "fed/aggregate_device.h"
#include "runtime/check_cuda.h"
#include "runtime/log.h"
#endif

namespace mira {

#ifdef MIRA_HAVE_CUDA
namespace {

class DeviceStateStore final : public ClientStateStore {
 public:
  DeviceStateStore(MPI_Comm comm, const AdapterPlacement& where, const std::vector<int>& owner, const Graph& graph,
                   size_t P, size_t S, bool fedit, bool reproducible, const float* init)
      : device_(where.device), stream_(static_cast<cudaStream_t>(where.stream)), P_(P), S_(S),
        reproducible_(reproducible) {
    MIRA_CHECK(device_ >= 0, "device adapter store without a device");
    MIRA_CHECK_CUDA(cudaSetDevice(device_));
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    for (size_t k = 0; k < owner.size(); ++k)
      if (owner[k] == rank) index_[static_cast<int>(k)] = ids_.size(), ids_.push_back(static_cast<int>(k));
    float* block = owned_.reserve(std::max<size_t>(ids_.size() * S_, 1));
    for (size_t i = 0; i < ids_.size(); ++i) put(block + i * S_, init, S_);
    if (fedit) put(global_.reserve(P_), init, P_);
    fedit_ = fedit;
    DeviceBinding b;
    b.device = device_;
    b.any_shared = where.shared;
    exchange_ = comm_create_device_exchange(comm, owner, graph.neighbours, P_, b, stream_);
    sync();
  }
  ~DeviceStateStore() override {
    if (stream_) cudaStreamSynchronize(stream_);  // queued copies may still read or write the buffers
  }

  std::string exchange_name() const {
    return dynamic_cast<NcclAdapterExchange*>(exchange_.get()) ? "NCCL" : "host-staged MPI";
  }

  int64_t move(const std::vector<ClientMove>& moves) override {
    exchange_->move(moves, [this](int k) { return slot(k); }, S_);
    return exchange_->last_stats().bytes_sent;
  }
  void clear_visiting() override {
    visiting_.clear();  // the slots stay allocated for the next rounds
    used_ = 0;
  }

  void load_adapter(Gpt2Model& m, int k) override { m.set_adapter(span(held(k), P_)); }
  void save_adapter(Gpt2Model& m, int k) override { m.get_adapter(span(held(k), P_)); }
  void load_optimizer(Gpt2Model& m, int k, int64_t step) override {
    const float* state = held(k);
    m.set_optimizer_state(span(state + P_, P_), span(state + 2 * P_, P_), step);
  }
  void save_optimizer(Gpt2Model& m, int k) override {
    float* state = held(k);
    int64_t step = 0;
    m.get_optimizer_state(span(state + P_, P_), span(state + 2 * P_, P_), &step);
  }

  void load_global_adapter(Gpt2Model& m) override { m.set_adapter(span(global_.data(), P_)); }
  void copy_global_to_owned(const std::vector<int>& clients) override {
    for (int k : clients)
      if (float* p = owned(k)) d2d(p, global_.data(), P_);
  }

  void load_gathered_adapter(Gpt2Model& m, int k) override {
    float* adapter = gathered_.reserve(P_);
    exchange_->gather({k}, lookup(), adapter);
    m.set_adapter(span(adapter, P_));
  }

  int64_t mira_step(const Graph& g, const std::vector<int>& sampled, NeighbourMode mode,
                    double eta_lambda) override {
    mira_step_device(*exchange_, g, sampled, mode, eta_lambda, lookup(), stream_, work_);
    return exchange_->last_stats().bytes_sent;
  }
  int64_t fedit_step(const std::vector<int>& sampled, const std::vector<int64_t>& data_size) override {
    const bool allreduce =
        fedit_step_device(*exchange_, sampled, data_size, lookup(), global_.data(), reproducible_, stream_, work_);
    if (!reproducible_ && !allreduce && !told_) {
      log_info("federation.reproducible = false: ignored with the %s exchange (FedIT keeps gather + ordered sum)",
               exchange_name().c_str());
      told_ = true;
    }
    return exchange_->last_stats().bytes_sent;
  }

  std::map<int, std::vector<float>> owned_states() const override {
    std::map<int, std::vector<float>> out;
    for (int k : ids_) {
      std::vector<float>& v = out[k];
      v.resize(S_);
      MIRA_CHECK_CUDA(cudaMemcpyAsync(v.data(), owned(k), S_ * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    }
    sync();
    return out;
  }
  std::vector<float> global_adapter() const override {
    std::vector<float> g;
    if (!fedit_) return g;
    g.resize(P_);
    MIRA_CHECK_CUDA(cudaMemcpyAsync(g.data(), global_.data(), P_ * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    sync();
    return g;
  }
  void restore(std::map<int, std::vector<float>> owned_host, std::vector<float> global) override {
    for (const auto& [k, v] : owned_host) {
      float* p = owned(k);
      MIRA_CHECK(p != nullptr && v.size() == S_, "restored state of client " + std::to_string(k));
      put(p, v.data(), S_);
    }
    if (fedit_) {
      MIRA_CHECK(global.size() == P_, "FedIT global adapter");
      put(global_.data(), global.data(), P_);
    }
    sync();
  }
  void snapshot() override {
    d2d(snap_owned_.reserve(std::max<size_t>(ids_.size() * S_, 1)), owned_.data(), ids_.size() * S_);
    if (fedit_) d2d(snap_global_.reserve(P_), global_.data(), P_);
  }
  void rollback() override {
    d2d(owned_.data(), snap_owned_.data(), ids_.size() * S_);
    if (fedit_) d2d(global_.data(), snap_global_.data(), P_);
  }

 private:
  static DFloat span(const float* p, size_t n) {
    return BackendAccess::make(const_cast<float*>(p), static_cast<int64_t>(n));
  }
  // Owned client k's state (device, S floats), nullptr when k is not owned here.
  float* owned(int k) const {
    auto it = index_.find(k);
    return it == index_.end() ? nullptr : owned_.data() + it->second * S_;
  }
  AdapterLookup lookup() const {
    return [this](int k) { return owned(k); };
  }
  // Owned state or, for another owner's client, a slot of S floats from the pool (a move's receive
  // buffer; kept until clear_visiting).
  float* slot(int k) {
    if (float* p = owned(k)) return p;
    auto it = visiting_.find(k);
    if (it != visiting_.end()) return it->second;
    if (used_ == pool_.size()) pool_.push_back(std::make_unique<DeviceFloats>());
    float* p = pool_[used_++]->reserve(S_);
    visiting_[k] = p;
    return p;
  }
  // The state of a client held here (owned or visiting).
  float* held(int k) const {
    if (float* p = owned(k)) return p;
    auto it = visiting_.find(k);
    MIRA_CHECK(it != visiting_.end(), "no state of client " + std::to_string(k) + " on this rank");
    return it->second;
  }
  void d2d(float* dst, const float* src, size_t n) {
    if (n > 0) MIRA_CHECK_CUDA(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
  }
  // Host to device, complete on return (the host buffer may go away).
  void put(float* dst, const float* host, size_t n) {
    if (n > 0) MIRA_CHECK_CUDA(cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
    sync();
  }
  void sync() const { MIRA_CHECK_CUDA(cudaStreamSynchronize(stream_)); }

  int device_;
  cudaStream_t stream_;
  size_t P_, S_;
  bool fedit_ = false, reproducible_ = true, told_ = false;
  std::vector<int> ids_;              // owned clients, ascending
  std::map<int, size_t> index_;       // owned client -> index in owned_
  DeviceFloats owned_;                // (owned, S)
  DeviceFloats global_;               // (P) FedIT
  DeviceFloats snap_owned_, snap_global_;
  DeviceFloats gathered_;             // (P) load_gathered_adapter's buffer
  std::vector<std::unique_ptr<DeviceFloats>> pool_;  // visiting slots (S each), reused every round
  size_t used_ = 0;
  std::map<int, float*> visiting_;
  DeviceAggregateWork work_;
  std::unique_ptr<AdapterExchange> exchange_;  // destroyed first (declared last)
};

}  // namespace

std::unique_ptr<ClientStateStore> device_store_create(MPI_Comm comm, const AdapterPlacement& where,
                                                      const std::vector<int>& owner, const Graph& graph, size_t P,
                                                      size_t S, bool fedit, bool reproducible, const float* init) {
  auto store = std::make_unique<DeviceStateStore>(comm, where, owner, graph, P, S, fedit, reproducible, init);
  log_info("federation: client adapters in GPU memory; exchange: %s%s", store->exchange_name().c_str(),
           fedit && !reproducible && !where.shared ? "; FedIT sums with ncclAllReduce "
                                                     "(federation.reproducible = false)"
                                                   : "");
  return store;
}

#else

std::unique_ptr<ClientStateStore> device_store_create(MPI_Comm, const AdapterPlacement&, const std::vector<int>&,
                                                      const Graph&, size_t, size_t, bool, bool, const float*) {
  throw InternalError("device adapter store: this build has no CUDA backend");
}

#endif

}  // namespace mira
