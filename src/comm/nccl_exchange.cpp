// Device-memory adapter exchanges (nccl_exchange.h): NCCL between distinct GPUs, MPI through host
// memory for ranks sharing a GPU. The rules are those of comm/exchange.h; the rank graph and each
// round's plan come from the same functions as the MPI exchange (comm_layout_build,
// comm_plan_round), so all three move the same adapters in the same order.
// Built only with the CUDA backend (MIRA_HAVE_CUDA). Multi-GPU NCCL verified on the emulator only (docs/cuda.md).
#ifdef MIRA_HAVE_CUDA
#include "comm/nccl_exchange.h"

#include <algorithm>
#include <string>

#include "runtime/check_cuda.h"
#include "runtime/check_mpi.h"
#include "runtime/error.h"

namespace mira {

namespace {

// A failed NCCL call on communicator `comm`: NCCL's error text plus its last detailed message.
[[noreturn]] void nccl_fail(ncclResult_t rc, ncclComm_t comm, const char* call, const char* file, int line) {
  std::string detail = ncclGetErrorString(rc);
  const char* last = ncclGetLastError(comm);
  if (last && *last) detail += " (" + std::string(last) + ")";
  throw_check_failure("NCCL", call, detail, file, line);
}

// Outside a group.
#define MIRA_NCCL(comm, call)                                                  \
  do {                                                                         \
    ncclResult_t mira_nccl_rc_ = (call);                                       \
    if (mira_nccl_rc_ != ncclSuccess) nccl_fail(mira_nccl_rc_, (comm), #call, __FILE__, __LINE__); \
  } while (0)

// Inside ncclGroupStart/ncclGroupEnd: a failed call closes the group before throwing, so NCCL's
// per-thread group state is not left open.
#define MIRA_NCCL_IN_GROUP(comm, call)                                         \
  do {                                                                         \
    ncclResult_t mira_nccl_rc_ = (call);                                       \
    if (mira_nccl_rc_ != ncclSuccess) {                                        \
      ncclGroupEnd();                                                          \
      nccl_fail(mira_nccl_rc_, (comm), #call, __FILE__, __LINE__);             \
    }                                                                          \
  } while (0)

// Broadcasts per ncclGroupStart/End in gather(). Older NCCL documents at most 2048 operations per
// group; every rank cuts the list at the same positions, so the groups match across ranks.
constexpr size_t GATHER_GROUP = 512;

int64_t bytes_of(int64_t adapters, size_t P) { return adapters * static_cast<int64_t>(P * sizeof(float)); }

void check_move(const ClientMove& m, int K, int size) {
  MIRA_CHECK(m.client >= 0 && m.client < K && m.from >= 0 && m.from < size && m.to >= 0 && m.to < size &&
                 m.from != m.to,
             "move of client " + std::to_string(m.client) + " from " + std::to_string(m.from) + " to " +
                 std::to_string(m.to));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// DeviceFloats

DeviceFloats::~DeviceFloats() {
  if (p_) cudaFree(p_);  // no throw from a destructor; a failure here cannot be acted on
}

float* DeviceFloats::reserve(size_t n) {
  if (n <= cap_) return p_;
  if (p_) {
    // The old buffer may still be read or written by queued work (the previous round's transfers
    // or the compute stream's reads of received adapters): wait for all of it. Only when a round
    // needs more than every earlier one.
    MIRA_CHECK_CUDA(cudaDeviceSynchronize());
    MIRA_CHECK_CUDA(cudaFree(p_));
    p_ = nullptr;
    cap_ = 0;
  }
  MIRA_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(float)));
  cap_ = n;
  return p_;
}

// ---------------------------------------------------------------------------------------------
// NcclAdapterExchange

NcclAdapterExchange::NcclAdapterExchange(MPI_Comm comm, std::vector<int> owner,
                                         std::vector<std::vector<int>> adjacency, size_t P, int device,
                                         cudaStream_t compute)
    : device_(device), P_(P), owner_(std::move(owner)), adjacency_(std::move(adjacency)), compute_(compute) {
  MIRA_CHECK_MPI(MPI_Comm_rank(comm, &rank_));
  MIRA_CHECK_MPI(MPI_Comm_size(comm, &size_));
  comm_check_client_graph(owner_, adjacency_, size_, P_);
  layout_ = comm_layout_build(owner_, adjacency_, rank_);
  recv_slot_.assign(owner_.size(), -1);
  MIRA_CHECK(device_ >= 0, "NCCL exchange on rank " + std::to_string(rank_) + " without a device (device " +
                               std::to_string(device_) + ")");
  // A constructor that throws runs no destructor: free what was created so far before rethrowing.
  try {
    init_resources(comm);
  } catch (...) {
    destroy();
    throw;
  }
}

void NcclAdapterExchange::init_resources(MPI_Comm comm) {
  MIRA_CHECK_CUDA(cudaSetDevice(device_));
  MIRA_CHECK_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  MIRA_CHECK_CUDA(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  MIRA_CHECK_CUDA(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  // Bootstrap: rank 0's unique id to every rank over MPI, then the collective init. A rank that
  // fails before the init throws; main then calls MPI_Abort, which also ends the ranks waiting in it.
  // ncclGetUniqueId's result travels with the id, so a failure on rank 0 stops every rank with
  // NCCL's error instead of leaving the others in ncclCommInitRank with an uninitialised id.
  struct {
    ncclUniqueId id;
    int rc;  // ncclResult_t of rank 0's ncclGetUniqueId
  } boot{};
  if (rank_ == 0) boot.rc = static_cast<int>(ncclGetUniqueId(&boot.id));
  MIRA_CHECK_MPI(MPI_Bcast(&boot, static_cast<int>(sizeof boot), MPI_BYTE, 0, comm));
  if (boot.rc != ncclSuccess)
    throw_check_failure("NCCL", "ncclGetUniqueId (on rank 0)", ncclGetErrorString(static_cast<ncclResult_t>(boot.rc)),
                        __FILE__, __LINE__);
  MIRA_CHECK_NCCL(ncclCommInitRank(&nccl_, size_, boot.id, rank_));
}

NcclAdapterExchange::~NcclAdapterExchange() { destroy(); }

void NcclAdapterExchange::destroy() noexcept {
  // No throw from a destructor: return codes are ignored here (the process is ending or the run
  // is over; queued transfers are waited for by ncclCommDestroy and cudaStreamDestroy).
  if (device_ >= 0) cudaSetDevice(device_);
  if (nccl_) ncclCommDestroy(nccl_);
  if (done_) cudaEventDestroy(done_);
  if (ready_) cudaEventDestroy(ready_);
  if (stream_) cudaStreamDestroy(stream_);
  nccl_ = nullptr;
  done_ = ready_ = nullptr;
  stream_ = nullptr;
}

void NcclAdapterExchange::begin() {
  MIRA_CHECK_CUDA(cudaSetDevice(device_));
  MIRA_CHECK_CUDA(cudaEventRecord(ready_, compute_));
  MIRA_CHECK_CUDA(cudaStreamWaitEvent(stream_, ready_, 0));
}

void NcclAdapterExchange::end() {
  MIRA_CHECK_CUDA(cudaEventRecord(done_, stream_));
  MIRA_CHECK_CUDA(cudaStreamWaitEvent(compute_, done_, 0));
  ncclResult_t async = ncclSuccess;  // errors NCCL found after the calls returned (e.g. a peer failed)
  MIRA_NCCL(nccl_, ncclCommGetAsyncError(nccl_, &async));
  if (async != ncclSuccess) nccl_fail(async, nccl_, "ncclCommGetAsyncError (asynchronous error)", __FILE__, __LINE__);
}

void NcclAdapterExchange::move(const std::vector<ClientMove>& moves, const AdapterLookup& buffer, size_t count) {
  MIRA_CHECK(count >= 1, "move count=" + std::to_string(count));
  stats_ = ExchangeStats{};
  struct Op {
    float* buf;
    int peer;
    bool recv;
  };
  std::vector<Op> ops;  // plan order: the order NCCL matches operations between a pair of ranks
  for (const ClientMove& m : moves) {
    check_move(m, clients(), size_);
    if (m.from != rank_ && m.to != rank_) continue;
    float* buf = buffer(m.client);
    MIRA_CHECK(buf != nullptr, "no buffer for client " + std::to_string(m.client) + " on rank " + std::to_string(rank_));
    ops.push_back(Op{buf, m.to == rank_ ? m.from : m.to, m.to == rank_});
    if (m.to == rank_) {
      stats_.adapters_received += 1;
      stats_.bytes_received += static_cast<int64_t>(count * sizeof(float));
    } else {
      stats_.adapters_sent += 1;
      stats_.bytes_sent += static_cast<int64_t>(count * sizeof(float));
    }
  }
  begin();
  MIRA_NCCL(nccl_, ncclGroupStart());
  for (const Op& op : ops) {
    if (op.recv)
      MIRA_NCCL_IN_GROUP(nccl_, ncclRecv(op.buf, count, ncclFloat, op.peer, nccl_, stream_));
    else
      MIRA_NCCL_IN_GROUP(nccl_, ncclSend(op.buf, count, ncclFloat, op.peer, nccl_, stream_));
  }
  MIRA_NCCL(nccl_, ncclGroupEnd());
  end();
}

void NcclAdapterExchange::exchange(const std::vector<char>& receiver, const std::vector<char>& provider,
                                   const AdapterLookup& owned) {
  const CommRoundPlan plan = comm_plan_round(layout_, owner_, adjacency_, rank_, receiver, provider);
  owned_ = owned;
  stats_ = ExchangeStats{};
  std::fill(recv_slot_.begin(), recv_slot_.end(), -1);
  std::vector<const float*> to_pack;  // peer order, ascending client id within a peer (rule 6)
  size_t nrecv = 0;
  for (size_t i = 0; i < plan.send.size(); ++i) {
    for (int l : plan.send[i]) {
      const float* p = owned(l);
      MIRA_CHECK(p != nullptr, "no buffer for owned client " + std::to_string(l));
      to_pack.push_back(p);
    }
    for (int l : plan.recv[i]) recv_slot_[l] = static_cast<int64_t>(nrecv++);
  }
  const size_t nsend = to_pack.size();
  MIRA_CHECK_CUDA(cudaSetDevice(device_));
  float* sbuf = send_buf_.reserve(nsend * P_);
  float* rbuf = recv_buf_.reserve(nrecv * P_);
  begin();
  for (size_t j = 0; j < nsend; ++j)
    MIRA_CHECK_CUDA(cudaMemcpyAsync(sbuf + j * P_, to_pack[j], P_ * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
  // One send and one receive per peer (each a packed block; zero counts are skipped on both sides,
  // which derive the same plan from the same masks).
  MIRA_NCCL(nccl_, ncclGroupStart());
  size_t so = 0, ro = 0;
  for (size_t i = 0; i < plan.send.size(); ++i) {
    const int q = layout_.peers[i];
    const size_t ns = plan.send[i].size(), nr = plan.recv[i].size();
    if (ns > 0) MIRA_NCCL_IN_GROUP(nccl_, ncclSend(sbuf + so * P_, ns * P_, ncclFloat, q, nccl_, stream_));
    if (nr > 0) MIRA_NCCL_IN_GROUP(nccl_, ncclRecv(rbuf + ro * P_, nr * P_, ncclFloat, q, nccl_, stream_));
    so += ns;
    ro += nr;
  }
  MIRA_NCCL(nccl_, ncclGroupEnd());
  end();
  stats_.adapters_sent = static_cast<int64_t>(nsend);
  stats_.adapters_received = static_cast<int64_t>(nrecv);
  stats_.bytes_sent = bytes_of(stats_.adapters_sent, P_);
  stats_.bytes_received = bytes_of(stats_.adapters_received, P_);
}

const float* NcclAdapterExchange::neighbour(int client) const {
  MIRA_CHECK(client >= 0 && client < clients(), "client " + std::to_string(client));
  if (owner_[client] == rank_) return owned_ ? owned_(client) : nullptr;
  const int64_t slot = recv_slot_[client];
  return slot < 0 ? nullptr : recv_buf_.data() + static_cast<size_t>(slot) * P_;
}

void NcclAdapterExchange::gather(const std::vector<int>& clients_list, const AdapterLookup& owned, float* out) {
  stats_ = ExchangeStats{};
  const size_t n = clients_list.size();
  std::vector<const float*> src(n, nullptr);
  int64_t mine = 0;
  for (size_t i = 0; i < n; ++i) {
    const int c = clients_list[i];
    MIRA_CHECK(c >= 0 && c < clients(), "client " + std::to_string(c));
    if (owner_[c] != rank_) continue;
    src[i] = owned(c);
    MIRA_CHECK(src[i] != nullptr, "no buffer for owned client " + std::to_string(c));
    ++mine;
  }
  MIRA_CHECK(n == 0 || out != nullptr, "gather of " + std::to_string(n) + " adapters into a null buffer");
  begin();
  // Slot i receives client i's adapter from its owner (the owner copies its own into its slot), so
  // `out` holds exactly the owners' bits in list order, whatever the rank count.
  for (size_t first = 0; first < n; first += GATHER_GROUP) {
    const size_t last = std::min(n, first + GATHER_GROUP);
    MIRA_NCCL(nccl_, ncclGroupStart());
    for (size_t i = first; i < last; ++i) {
      float* slot = out + i * P_;
      const int root = owner_[clients_list[i]];
      MIRA_NCCL_IN_GROUP(nccl_, ncclBroadcast(root == rank_ ? src[i] : slot, slot, P_, ncclFloat, root, nccl_, stream_));
    }
    MIRA_NCCL(nccl_, ncclGroupEnd());
  }
  end();
  stats_.adapters_sent = mine;
  stats_.adapters_received = static_cast<int64_t>(n) - mine;
  stats_.bytes_sent = bytes_of(stats_.adapters_sent, P_);
  stats_.bytes_received = bytes_of(stats_.adapters_received, P_);
}

void NcclAdapterExchange::allreduce_sum(float* buf, size_t count) {
  stats_ = ExchangeStats{};
  if (count == 0) return;
  MIRA_CHECK(buf != nullptr, "allreduce of " + std::to_string(count) + " floats on a null buffer");
  begin();
  MIRA_NCCL(nccl_, ncclAllReduce(buf, buf, count, ncclFloat, ncclSum, nccl_, stream_));
  end();
  // The buffer size (nccl-tests' algbw convention), not the bytes on the wire, which depend on
  // NCCL's algorithm (ring, tree) and the rank count.
  stats_.bytes_sent = static_cast<int64_t>(count * sizeof(float));
  stats_.bytes_received = stats_.bytes_sent;
}

// ---------------------------------------------------------------------------------------------
// HostStagedAdapterExchange

HostStagedAdapterExchange::HostStagedAdapterExchange(MPI_Comm comm, std::vector<int> owner,
                                                     std::vector<std::vector<int>> adjacency, size_t P, int device,
                                                     cudaStream_t compute)
    : mpi_(comm, std::move(owner), std::move(adjacency), P), device_(device), compute_(compute) {
  recv_slot_.assign(static_cast<size_t>(mpi_.clients()), -1);
  MIRA_CHECK(device_ >= 0, "host-staged exchange on rank " + std::to_string(mpi_.rank()) + " without a device");
  MIRA_CHECK_CUDA(cudaSetDevice(device_));
}

float* HostStagedAdapterExchange::host_slot(std::map<int, std::vector<float>>& m, int client, size_t n) {
  std::vector<float>& v = m[client];
  if (v.size() < n) v.resize(n);  // kept between calls: no allocation once every client was seen
  return v.data();
}

// Both after cudaStreamSynchronize(compute_): the device data is final, and copies on compute_
// followed by one more synchronisation leave the host data final.
void HostStagedAdapterExchange::download(float* host, const float* dev, size_t n) {
  MIRA_CHECK_CUDA(cudaMemcpyAsync(host, dev, n * sizeof(float), cudaMemcpyDeviceToHost, compute_));
}
void HostStagedAdapterExchange::upload(float* dev, const float* host, size_t n) {
  MIRA_CHECK_CUDA(cudaMemcpyAsync(dev, host, n * sizeof(float), cudaMemcpyHostToDevice, compute_));
}

void HostStagedAdapterExchange::move(const std::vector<ClientMove>& moves, const AdapterLookup& buffer,
                                     size_t count) {
  const int me = mpi_.rank();
  MIRA_CHECK_CUDA(cudaSetDevice(device_));
  MIRA_CHECK_CUDA(cudaStreamSynchronize(compute_));
  for (const ClientMove& m : moves) {
    if (m.from != me && m.to != me) continue;
    float* host = host_slot(host_, m.client, count);
    if (m.from == me) {
      const float* dev = buffer(m.client);
      MIRA_CHECK(dev != nullptr, "no buffer for client " + std::to_string(m.client) + " on rank " + std::to_string(me));
      download(host, dev, count);
    }
  }
  MIRA_CHECK_CUDA(cudaStreamSynchronize(compute_));
  // The MPI exchange checks the move list itself (same messages as without a device).
  mpi_.move(moves, [this, count](int c) { return host_slot(host_, c, count); }, count);
  for (const ClientMove& m : moves) {
    if (m.to != me) continue;
    float* dev = buffer(m.client);
    MIRA_CHECK(dev != nullptr, "no buffer for client " + std::to_string(m.client) + " on rank " + std::to_string(me));
    upload(dev, host_slot(host_, m.client, count), count);
  }
  MIRA_CHECK_CUDA(cudaStreamSynchronize(compute_));
}

void HostStagedAdapterExchange::exchange(const std::vector<char>& receiver, const std::vector<char>& provider,
                                         const AdapterLookup& owned) {
  const size_t P = mpi_.adapter_floats();
  MIRA_CHECK_CUDA(cudaSetDevice(device_));
  MIRA_CHECK_CUDA(cudaStreamSynchronize(compute_));
  owned_ = owned;
  // The MPI exchange asks only for the owned adapters it sends: download those on demand. Each copy
  // is waited for before the call returns, as MpiAdapterExchange packs the pointer right away.
  // On the compute stream (not the legacy default stream, which is not ordered with a non-blocking
  // compute stream and would also wait for every blocking stream of the device).
  mpi_.exchange(receiver, provider, [this, owned, P](int c) -> float* {
    const float* dev = owned(c);
    if (!dev) return nullptr;
    float* host = host_slot(host_, c, P);
    download(host, dev, P);
    MIRA_CHECK_CUDA(cudaStreamSynchronize(compute_));
    return host;
  });
  // The received copies, to the device in client order.
  std::fill(recv_slot_.begin(), recv_slot_.end(), -1);
  std::vector<int> received;
  for (int c = 0; c < mpi_.clients(); ++c)
    if (!mpi_.owns(c) && mpi_.neighbour(c) != nullptr) received.push_back(c);
  float* rbuf = recv_buf_.reserve(received.size() * P);
  for (size_t j = 0; j < received.size(); ++j) {
    recv_slot_[received[j]] = static_cast<int64_t>(j);
    upload(rbuf + j * P, mpi_.neighbour(received[j]), P);
  }
  MIRA_CHECK_CUDA(cudaStreamSynchronize(compute_));
}

const float* HostStagedAdapterExchange::neighbour(int client) const {
  MIRA_CHECK(client >= 0 && client < clients(), "client " + std::to_string(client));
  if (mpi_.owns(client)) return owned_ ? owned_(client) : nullptr;
  const int64_t slot = recv_slot_[client];
  return slot < 0 ? nullptr : recv_buf_.data() + static_cast<size_t>(slot) * mpi_.adapter_floats();
}

void HostStagedAdapterExchange::gather(const std::vector<int>& clients_list, const AdapterLookup& owned, float* out) {
  const size_t P = mpi_.adapter_floats(), n = clients_list.size();
  MIRA_CHECK(n == 0 || out != nullptr, "gather of " + std::to_string(n) + " adapters into a null buffer");
  MIRA_CHECK_CUDA(cudaSetDevice(device_));
  MIRA_CHECK_CUDA(cudaStreamSynchronize(compute_));
  for (int c : clients_list) {
    MIRA_CHECK(c >= 0 && c < clients(), "client " + std::to_string(c));
    if (!mpi_.owns(c)) continue;
    const float* dev = owned(c);
    MIRA_CHECK(dev != nullptr, "no buffer for owned client " + std::to_string(c));
    download(host_slot(host_, c, P), dev, P);
  }
  MIRA_CHECK_CUDA(cudaStreamSynchronize(compute_));
  host_gather_.resize(n * P);
  mpi_.gather(clients_list, [this, P](int c) { return host_slot(host_, c, P); }, host_gather_.data());
  if (n > 0) upload(out, host_gather_.data(), n * P);
  MIRA_CHECK_CUDA(cudaStreamSynchronize(compute_));
}

// ---------------------------------------------------------------------------------------------

std::unique_ptr<AdapterExchange> comm_create_device_exchange(MPI_Comm comm, std::vector<int> owner,
                                                             std::vector<std::vector<int>> adjacency, size_t P,
                                                             const DeviceBinding& binding, cudaStream_t compute) {
  if (binding.any_shared)
    return std::make_unique<HostStagedAdapterExchange>(comm, std::move(owner), std::move(adjacency), P, binding.device,
                                                       compute);
  return std::make_unique<NcclAdapterExchange>(comm, std::move(owner), std::move(adjacency), P, binding.device,
                                               compute);
}

}  // namespace mira
#endif  // MIRA_HAVE_CUDA
