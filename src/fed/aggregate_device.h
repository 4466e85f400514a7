// The aggregation step of a round (fed/aggregate.h) on DEVICE-resident adapters (CUDA backend):
// the same exchange calls as mira_step / fedit_step, then the kernels of kernels/cuda/aggregate.h,
// which do the CPU references' double-precision operations in the same order: mira_step_device and
// fedit_step_device (reproducible) give bitwise the results of mira_step / fedit_step on the same
// adapters (tests/gpu/test_cuda_aggregate.cpp). Every AdapterLookup returns device pointers (an
// exchange from comm/nccl_exchange.h); all device work is queued on `stream` (the backend's), no
// host synchronisation here except what the exchange does itself (HostStagedAdapterExchange).
// Built only with the CUDA backend (MIRA_HAVE_CUDA).
#pragma once
#ifdef MIRA_HAVE_CUDA
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "comm/exchange.h"
#include "comm/nccl_exchange.h"
#include "fed/aggregate.h"
#include "fed/graph.h"

namespace mira {

// Device buffers reused from round to round (grown on demand, never shrunk).
struct DeviceAggregateWork {
  DeviceFloats staged;   // (targets, P) eq. (8) results before they overwrite the owned states
  DeviceFloats gathered; // (sampled, P) FedIT gather
  DeviceFloats tables;   // pointer / weight / offset tables of the kernels
  std::vector<unsigned char> host_tables;  // their host image
};

// Distributed eq. (8) over `ex` on device adapters: same contract as mira_step (aggregate.h).
void mira_step_device(AdapterExchange& ex, const Graph& g, const std::vector<int>& sampled, NeighbourMode mode,
                      double eta_lambda, const AdapterLookup& owned, cudaStream_t stream, DeviceAggregateWork& work);

// Distributed FedIT into `global` (P floats, device). reproducible: gather + weighted sum in client
// order (bitwise equal to fedit_step). Not reproducible and `ex` is an NcclAdapterExchange: every
// rank sums its own sampled clients (same weights, client order) and ncclAllReduce adds the ranks'
// partial sums (NCCL's order: not bitwise reproducible across rank counts). Returns whether the
// all-reduce was used (false: the reproducible path ran).
bool fedit_step_device(AdapterExchange& ex, const std::vector<int>& sampled, const std::vector<int64_t>& data_size,
                       const AdapterLookup& owned, float* global, bool reproducible, cudaStream_t stream,
                       DeviceAggregateWork& work);

}  // namespace mira
#endif  // MIRA_HAVE_CUDA
