// The host-resident client state store (host_store.h): std::map buffers keyed by client id for the
// owned states and the visiting slots, a vector for FedIT's global adapter, copies of both for the
// rollback, MpiAdapterExchange for every transfer and fed/aggregate.h for the aggregation.
#include "fed/host_store.h"

#include <algorithm>
#include <string>

#include "comm/mpi_exchange.h"
#include "runtime/check_mpi.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace mira {
namespace {

class HostStateStore final : public ClientStateStore {
 public:
  HostStateStore(MPI_Comm comm, const std::vector<int>& owner, const Graph& graph, size_t P, size_t S, bool fedit,
                 bool reproducible, const float* init)
      : P_(P), S_(S), fedit_(fedit) {
    int rank = 0;
    MIRA_CHECK_MPI(MPI_Comm_rank(comm, &rank));
    for (size_t k = 0; k < owner.size(); ++k)
      if (owner[k] == rank) owned_[static_cast<int>(k)].assign(init, init + S_);
    if (fedit_) global_.assign(init, init + P_);
    exchange_ = std::make_unique<MpiAdapterExchange>(comm, owner, graph.neighbours, P_);
    if (fedit_ && !reproducible)
      log_info("federation.reproducible = false: ignored on the cpu backend (FedIT keeps gather + ordered sum)");
  }

  int64_t move(const std::vector<ClientMove>& moves) override {
    exchange_->move(moves, [this](int k) { return slot(k); }, S_);
    return exchange_->last_stats().bytes_sent;
  }
  void clear_visiting() override { visiting_.clear(); }

  void load_adapter(Gpt2Model& m, int k) override { m.set_adapter(held(k)); }
  void save_adapter(Gpt2Model& m, int k) override { m.get_adapter(held(k)); }
  void load_optimizer(Gpt2Model& m, int k, int64_t step) override {
    const float* state = held(k);
    m.set_optimizer_state(state + P_, state + 2 * P_, step);
  }
  void save_optimizer(Gpt2Model& m, int k) override {
    float* state = held(k);
    int64_t step = 0;
    m.get_optimizer_state(state + P_, state + 2 * P_, &step);
  }

  void load_global_adapter(Gpt2Model& m) override { m.set_adapter(global_.data()); }
  void copy_global_to_owned(const std::vector<int>& clients) override {
    for (int k : clients)
      if (float* state = owned(k)) std::copy(global_.begin(), global_.end(), state);
  }

  void load_gathered_adapter(Gpt2Model& m, int k) override {
    gathered_.resize(P_);
    exchange_->gather({k}, owned_lookup(), gathered_.data());
    m.set_adapter(gathered_.data());
  }

  int64_t mira_step(const Graph& g, const std::vector<int>& sampled, NeighbourMode mode,
                    double eta_lambda) override {
    mira::mira_step(*exchange_, g, sampled, mode, eta_lambda, owned_lookup());
    return exchange_->last_stats().bytes_sent;
  }
  int64_t fedit_step(const std::vector<int>& sampled, const std::vector<int64_t>& data_size) override {
    mira::fedit_step(*exchange_, sampled, data_size, owned_lookup(), global_.data());
    return exchange_->last_stats().bytes_sent;
  }

  std::map<int, std::vector<float>> owned_states() const override { return owned_; }
  std::vector<float> global_adapter() const override { return global_; }
  void restore(std::map<int, std::vector<float>> owned, std::vector<float> global) override {
    owned_ = std::move(owned);
    if (fedit_) global_ = std::move(global);
  }

  void snapshot() override {
    snapshot_owned_ = owned_;
    snapshot_global_ = global_;
  }
  void rollback() override {
    owned_ = snapshot_owned_;
    global_ = snapshot_global_;
  }

 private:
  float* owned(int k) {
    auto it = owned_.find(k);
    return it == owned_.end() ? nullptr : it->second.data();
  }
  AdapterLookup owned_lookup() {
    return [this](int k) { return owned(k); };
  }
  // Owned state or, for another owner's client, its visiting slot (created on first use: a move's
  // receive buffer).
  float* slot(int k) {
    if (float* state = owned(k)) return state;
    std::vector<float>& v = visiting_[k];
    v.resize(S_);
    return v.data();
  }
  // The state of a client held here (owned or visiting).
  float* held(int k) {
    if (float* state = owned(k)) return state;
    auto it = visiting_.find(k);
    MIRA_CHECK(it != visiting_.end(), "no state of client " + std::to_string(k) + " on this rank");
    return it->second.data();
  }

  size_t P_, S_;
  bool fedit_;
  std::map<int, std::vector<float>> owned_;     // client -> state (S)
  std::map<int, std::vector<float>> visiting_;  // states trained here for another owner (S)
  std::vector<float> global_;                   // FedIT global adapter (P)
  std::vector<float> gathered_;                 // load_gathered_adapter's buffer (P)
  std::map<int, std::vector<float>> snapshot_owned_;
  std::vector<float> snapshot_global_;
  std::unique_ptr<AdapterExchange> exchange_;
};

}  // namespace

std::unique_ptr<ClientStateStore> host_store_create(MPI_Comm comm, const std::vector<int>& owner, const Graph& graph,
                                                    size_t P, size_t S, bool fedit, bool reproducible,
                                                    const float* init) {
  return std::make_unique<HostStateStore>(comm, owner, graph, P, S, fedit, reproducible, init);
}

}  // namespace mira
