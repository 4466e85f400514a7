// Host shims of the NCCL calls and CUDA events used by the device adapter exchange, over MPI, for
// the CPU emulator (the model and the limits are in nccl_emu.h). Compiled with -include cuda_emu.h
// -include nccl_emu.h like the code that calls them.
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <new>
#include <set>
#include <string>
#include <vector>

struct ncclComm {
  MPI_Comm comm = MPI_COMM_NULL;  // a split of MPI_COMM_WORLD ordered by NCCL rank
  int rank = 0, size = 1;
  std::string last;               // the last error, for ncclGetLastError
};

namespace {

struct Op {
  enum Kind { SEND, RECV, BCAST, ALLREDUCE } kind;
  const void* send;
  void* recv;
  size_t count;
  ncclDataType_t type;
  int peer;  // peer (send, recv) or root (broadcast)
  ncclRedOp_t red;
  ncclComm_t comm;
};

thread_local int g_depth = 0;           // ncclGroupStart nesting
thread_local std::vector<Op> g_pending; // the open group's operations, in call order
std::string g_last;                     // the last error without a communicator
std::set<void*>& events() {
  static std::set<void*> e;
  return e;
}

size_t type_size(ncclDataType_t t, MPI_Datatype* mpi) {
  switch (t) {
    case ncclInt8: *mpi = MPI_INT8_T; return 1;
    case ncclUint8: *mpi = MPI_UINT8_T; return 1;
    case ncclInt32: *mpi = MPI_INT32_T; return 4;
    case ncclUint32: *mpi = MPI_UINT32_T; return 4;
    case ncclInt64: *mpi = MPI_INT64_T; return 8;
    case ncclUint64: *mpi = MPI_UINT64_T; return 8;
    case ncclFloat32: *mpi = MPI_FLOAT; return 4;
    case ncclFloat64: *mpi = MPI_DOUBLE; return 8;
    default: return 0;
  }
}

ncclResult_t fail(ncclComm_t comm, ncclResult_t rc, const std::string& what) {
  (comm ? comm->last : g_last) = "NCCL emulator (tests/emu/nccl_emu.cpp): " + what;
  return rc;
}

// Posts every operation as a non-blocking MPI operation in order, then waits for all of them.
ncclResult_t run_ops(std::vector<Op>& ops) {
  std::vector<MPI_Request> req;
  req.reserve(ops.size());
  for (const Op& op : ops) {
    MPI_Datatype mt = MPI_BYTE;
    const size_t ts = type_size(op.type, &mt);
    if (ts == 0) return fail(op.comm, ncclInvalidArgument, "data type " + std::to_string((int)op.type) + " not supported");
    if (op.count > (size_t)INT_MAX)
      return fail(op.comm, ncclInvalidArgument, "count " + std::to_string(op.count) + " above INT_MAX");
    const int n = (int)op.count;
    MPI_Request r = MPI_REQUEST_NULL;
    int rc = MPI_SUCCESS;
    switch (op.kind) {
      case Op::SEND:
        rc = MPI_Isend(op.send, n, mt, op.peer, 0, op.comm->comm, &r);
        break;
      case Op::RECV:
        rc = MPI_Irecv(op.recv, n, mt, op.peer, 0, op.comm->comm, &r);
        break;
      case Op::BCAST:
        if (op.comm->rank == op.peer && op.send != op.recv && n > 0) std::memmove(op.recv, op.send, op.count * ts);
        rc = MPI_Ibcast(op.recv, n, mt, op.peer, op.comm->comm, &r);
        break;
      case Op::ALLREDUCE: {
        if (op.red != ncclSum) return fail(op.comm, ncclInvalidArgument, "only ncclSum is emulated");
        rc = MPI_Iallreduce(op.send == op.recv ? MPI_IN_PLACE : op.send, op.recv, n, mt, MPI_SUM, op.comm->comm, &r);
        break;
      }
    }
    if (rc != MPI_SUCCESS) return fail(op.comm, ncclSystemError, "MPI call failed");
    req.push_back(r);
  }
  if (!req.empty() && MPI_Waitall((int)req.size(), req.data(), MPI_STATUSES_IGNORE) != MPI_SUCCESS)
    return fail(ops.front().comm, ncclSystemError, "MPI_Waitall failed");
  return ncclSuccess;
}

ncclResult_t submit(const Op& op) {
  if (!op.comm) return fail(nullptr, ncclInvalidArgument, "null communicator");
  if ((op.kind == Op::SEND || op.kind == Op::RECV || op.kind == Op::BCAST) &&
      (op.peer < 0 || op.peer >= op.comm->size))
    return fail(op.comm, ncclInvalidArgument, "peer/root " + std::to_string(op.peer) + " of " +
                                                  std::to_string(op.comm->size) + " ranks");
  if (g_depth > 0) {
    g_pending.push_back(op);
    return ncclSuccess;
  }
  std::vector<Op> one{op};
  return run_ops(one);
}

}  // namespace

ncclResult_t mira_emu_ncclGetUniqueId(ncclUniqueId* id) {
  if (!id) return fail(nullptr, ncclInvalidArgument, "ncclGetUniqueId(nullptr)");
  std::memset(id, 0, sizeof *id);
  const long long token = (long long)getpid() ^ std::chrono::steady_clock::now().time_since_epoch().count();
  std::snprintf(id->internal, sizeof id->internal, "emu-%lld", token);
  return ncclSuccess;
}

ncclResult_t mira_emu_ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  if (!comm) return fail(nullptr, ncclInvalidArgument, "ncclCommInitRank(nullptr, ...)");
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (nranks != world || rank < 0 || rank >= nranks)
    return fail(nullptr, ncclInvalidArgument,
                "the emulated communicator spans MPI_COMM_WORLD (" + std::to_string(world) + " ranks); asked for rank " +
                    std::to_string(rank) + " of " + std::to_string(nranks));
  auto* c = new ncclComm;
  MPI_Comm_split(MPI_COMM_WORLD, 0, rank, &c->comm);
  MPI_Comm_rank(c->comm, &c->rank);
  MPI_Comm_size(c->comm, &c->size);
  // Every rank must hold the same id (rank 0's, broadcast by the caller).
  std::vector<char> all((size_t)c->size * sizeof id.internal);
  MPI_Allgather(id.internal, (int)sizeof id.internal, MPI_CHAR, all.data(), (int)sizeof id.internal, MPI_CHAR, c->comm);
  for (int r = 1; r < c->size; ++r)
    if (std::memcmp(all.data(), all.data() + (size_t)r * sizeof id.internal, sizeof id.internal) != 0) {
      MPI_Comm_free(&c->comm);
      delete c;
      return fail(nullptr, ncclInvalidUsage, "ranks passed different unique ids to ncclCommInitRank");
    }
  *comm = c;
  return ncclSuccess;
}

ncclResult_t mira_emu_ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return ncclSuccess;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm->comm != MPI_COMM_NULL) MPI_Comm_free(&comm->comm);
  delete comm;
  return ncclSuccess;
}
ncclResult_t mira_emu_ncclCommAbort(ncclComm_t comm) { return mira_emu_ncclCommDestroy(comm); }

ncclResult_t mira_emu_ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) {
  if (!comm || !async_error) return fail(comm, ncclInvalidArgument, "ncclCommGetAsyncError");
  *async_error = ncclSuccess;  // operations complete (or fail) at their call
  return ncclSuccess;
}

const char* mira_emu_ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    default: return "unknown result code";
  }
}

const char* mira_emu_ncclGetLastError(ncclComm_t comm) { return (comm ? comm->last : g_last).c_str(); }

ncclResult_t mira_emu_ncclGetVersion(int* version) {
  if (!version) return ncclInvalidArgument;
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

ncclResult_t mira_emu_ncclGroupStart() {
  ++g_depth;
  return ncclSuccess;
}

ncclResult_t mira_emu_ncclGroupEnd() {
  if (g_depth <= 0) return fail(nullptr, ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
  if (--g_depth > 0) return ncclSuccess;
  std::vector<Op> ops;
  ops.swap(g_pending);
  return run_ops(ops);
}

ncclResult_t mira_emu_ncclSend(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                               cudaStream_t) {
  return submit(Op{Op::SEND, sendbuff, nullptr, count, datatype, peer, ncclSum, comm});
}
ncclResult_t mira_emu_ncclRecv(void* recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                               cudaStream_t) {
  return submit(Op{Op::RECV, nullptr, recvbuff, count, datatype, peer, ncclSum, comm});
}
ncclResult_t mira_emu_ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                    int root, ncclComm_t comm, cudaStream_t) {
  return submit(Op{Op::BCAST, sendbuff, recvbuff, count, datatype, root, ncclSum, comm});
}
ncclResult_t mira_emu_ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                    ncclRedOp_t op, ncclComm_t comm, cudaStream_t) {
  return submit(Op{Op::ALLREDUCE, sendbuff, recvbuff, count, datatype, 0, op, comm});
}

// Events: the emulated streams run every operation at its call, so an event is complete when
// recorded and waiting for one is a no-op; the handles are checked like the emulator's streams.
cudaError_t mira_emu_cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  if (!event) return cudaErrorInvalidValue;
  void* h = ::operator new(1);
  events().insert(h);
  *event = static_cast<cudaEvent_t>(h);
  return cudaSuccess;
}
cudaError_t mira_emu_cudaEventCreate(cudaEvent_t* event) { return mira_emu_cudaEventCreateWithFlags(event, 0); }
cudaError_t mira_emu_cudaEventDestroy(cudaEvent_t event) {
  if (!event || !events().erase((void*)event)) return cudaErrorInvalidResourceHandle;
  ::operator delete((void*)event);
  return cudaSuccess;
}
cudaError_t mira_emu_cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  return event && events().count((void*)event) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}
cudaError_t mira_emu_cudaEventSynchronize(cudaEvent_t event) { return mira_emu_cudaEventRecord(event, nullptr); }
cudaError_t mira_emu_cudaStreamWaitEvent(cudaStream_t, cudaEvent_t event, unsigned) {
  return mira_emu_cudaEventRecord(event, nullptr);
}

cudaError_t mira_emu_cudaMallocHost(void** p, size_t bytes) {
  if (!p) return cudaErrorInvalidValue;
  *p = ::operator new(bytes > 0 ? bytes : 1, std::nothrow);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t mira_emu_cudaFreeHost(void* p) {
  ::operator delete(p);
  return cudaSuccess;
}
