// NCCL and CUDA events on the CPU emulator (docs/cuda.md "The CUDA backend on a CPU emulator"):
// force-included (-include, after cuda_emu.h) into the sources of the device adapter exchange that
// the emulated builds compile (src/comm/nccl_exchange.cpp, src/fed/device_store.cpp, ...). Like
// cuda_emu.h, it renames every call to a host shim (nccl_emu.cpp) so that nothing of the real NCCL
// or CUDA runtime is reached from emulated code, even in builds that link them.
//
// The shims implement exactly the NCCL calls comm/nccl_exchange.cpp makes, over MPI, in the
// emulator's stream model: device work runs at the call (every stream is synchronous), so an NCCL
// operation outside a group completes before its call returns, and the operations of a group
// (ncclGroupStart .. ncclGroupEnd) are posted together as non-blocking MPI operations in call order
// at ncclGroupEnd and completed there (MPI_Waitall): the matching rules of NCCL (send/recv pairs in
// order per peer, collectives in the same order on every rank) are MPI's. Events are no-ops in this
// model (recording one finds all earlier work done). Limits: the communicator spans
// MPI_COMM_WORLD (nranks must be the world size; ranks keep their NCCL numbering), and a message
// holds at most INT_MAX bytes.
#pragma once
#include <cuda_runtime.h>
#include <nccl.h>

#undef ncclGetUniqueId
#define ncclGetUniqueId mira_emu_ncclGetUniqueId
#undef ncclCommInitRank
#define ncclCommInitRank mira_emu_ncclCommInitRank
#undef ncclCommDestroy
#define ncclCommDestroy mira_emu_ncclCommDestroy
#undef ncclCommAbort
#define ncclCommAbort mira_emu_ncclCommAbort
#undef ncclCommGetAsyncError
#define ncclCommGetAsyncError mira_emu_ncclCommGetAsyncError
#undef ncclGetErrorString
#define ncclGetErrorString mira_emu_ncclGetErrorString
#undef ncclGetLastError
#define ncclGetLastError mira_emu_ncclGetLastError
#undef ncclGetVersion
#define ncclGetVersion mira_emu_ncclGetVersion
#undef ncclGroupStart
#define ncclGroupStart mira_emu_ncclGroupStart
#undef ncclGroupEnd
#define ncclGroupEnd mira_emu_ncclGroupEnd
#undef ncclSend
#define ncclSend mira_emu_ncclSend
#undef ncclRecv
#define ncclRecv mira_emu_ncclRecv
#undef ncclBroadcast
#define ncclBroadcast mira_emu_ncclBroadcast
#undef ncclAllReduce
#define ncclAllReduce mira_emu_ncclAllReduce
#undef cudaEventCreateWithFlags
#define cudaEventCreateWithFlags mira_emu_cudaEventCreateWithFlags
#undef cudaEventCreate
#define cudaEventCreate mira_emu_cudaEventCreate
#undef cudaEventDestroy
#define cudaEventDestroy mira_emu_cudaEventDestroy
#undef cudaEventRecord
#define cudaEventRecord mira_emu_cudaEventRecord
#undef cudaEventSynchronize
#define cudaEventSynchronize mira_emu_cudaEventSynchronize
#undef cudaStreamWaitEvent
#define cudaStreamWaitEvent mira_emu_cudaStreamWaitEvent
#undef cudaMallocHost
#define cudaMallocHost mira_emu_cudaMallocHost
#undef cudaFreeHost
#define cudaFreeHost mira_emu_cudaFreeHost

ncclResult_t mira_emu_ncclGetUniqueId(ncclUniqueId* id);
ncclResult_t mira_emu_ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank);
ncclResult_t mira_emu_ncclCommDestroy(ncclComm_t comm);
ncclResult_t mira_emu_ncclCommAbort(ncclComm_t comm);
ncclResult_t mira_emu_ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error);
const char* mira_emu_ncclGetErrorString(ncclResult_t result);
const char* mira_emu_ncclGetLastError(ncclComm_t comm);
ncclResult_t mira_emu_ncclGetVersion(int* version);
ncclResult_t mira_emu_ncclGroupStart();
ncclResult_t mira_emu_ncclGroupEnd();
ncclResult_t mira_emu_ncclSend(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                               cudaStream_t stream);
ncclResult_t mira_emu_ncclRecv(void* recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                               cudaStream_t stream);
ncclResult_t mira_emu_ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                    int root, ncclComm_t comm, cudaStream_t stream);
ncclResult_t mira_emu_ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                    ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
cudaError_t mira_emu_cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t mira_emu_cudaEventCreate(cudaEvent_t* event);
cudaError_t mira_emu_cudaEventDestroy(cudaEvent_t event);
cudaError_t mira_emu_cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t mira_emu_cudaEventSynchronize(cudaEvent_t event);
cudaError_t mira_emu_cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
// Pinned host memory (the tests' staging areas): plain host memory here.
cudaError_t mira_emu_cudaMallocHost(void** p, size_t bytes);
cudaError_t mira_emu_cudaFreeHost(void* p);
