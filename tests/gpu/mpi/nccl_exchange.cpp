// NcclAdapterExchange (comm/nccl_exchange.h) under mpiexec, label gpu: bootstrap from MPI, a raw
// grouped ncclSend/ncclRecv from each rank to itself on the exchange's communicator, neighbour
// exchange / moves / gather compared bit for bit with the host MpiAdapterExchange, and the
// unordered allreduce on integer values (exact in any order). NCCL needs one GPU per rank: every
// test skips (with the reason) without a CUDA device, and when ranks would share a GPU - so on a
// one-GPU machine only the np1 entry runs; np2-np4 need as many GPUs as ranks.
#include "gpu_mpi_util.h"

#ifdef MIRA_HAVE_CUDA
#include "comm/nccl_exchange.h"
#include "runtime/check_cuda.h"
#endif

namespace mira_gpu_mpi {
namespace {

#ifdef MIRA_HAVE_CUDA

class NcclExchange : public DeviceExchangeFixture<mira::NcclAdapterExchange, /*NeedOwnGpu=*/true> {};

TEST_F(NcclExchange, SendReceiveToItself) {
  const int K = world_size();
  mira::NcclAdapterExchange ex(MPI_COMM_WORLD, mira::assignment_owners(K, world_size()), mira::graph_ring(K).neighbours,
                               3, binding_.device, compute_);
  const size_t n = 1000003;  // odd, not a multiple of any vector width
  std::vector<float> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = adapter_value(world_rank(), i);
  float *a = DeviceStore::dalloc(n), *b = DeviceStore::dalloc(n);
  // Everything on the exchange's (non-blocking) stream: a cudaMemcpy / cudaMemset on the legacy
  // default stream is not ordered with it (the memset of b could land after the receive).
  const cudaStream_t cs = ex.comm_stream();
  MIRA_CHECK_CUDA(cudaMemcpyAsync(a, h.data(), n * sizeof(float), cudaMemcpyHostToDevice, cs));
  MIRA_CHECK_CUDA(cudaMemsetAsync(b, 0xff, n * sizeof(float), cs));
  const int me = world_rank();
  MIRA_CHECK_NCCL(ncclGroupStart());
  MIRA_CHECK_NCCL(ncclSend(a, n, ncclFloat, me, ex.nccl_comm(), cs));
  MIRA_CHECK_NCCL(ncclRecv(b, n, ncclFloat, me, ex.nccl_comm(), cs));
  MIRA_CHECK_NCCL(ncclGroupEnd());
  std::vector<float> got(n);
  MIRA_CHECK_CUDA(cudaMemcpyAsync(got.data(), b, n * sizeof(float), cudaMemcpyDeviceToHost, cs));
  MIRA_CHECK_CUDA(cudaStreamSynchronize(cs));
  EXPECT_EQ(std::memcmp(got.data(), h.data(), n * sizeof(float)), 0) << "self send/receive changed bits";
  cudaFree(a);
  cudaFree(b);
}

TEST_F(NcclExchange, RankGraphIsTheMpiOne) {
  const int R = world_size();
  for (int K : {1, 2, 3, 5, 9})
    for (auto& [name, g] : test_graphs(K)) {
      const std::vector<int> owner = mira::assignment_owners(K, R);
      mira::NcclAdapterExchange nccl(MPI_COMM_WORLD, owner, g.neighbours, 4, binding_.device, compute_);
      mira::MpiAdapterExchange mpi(MPI_COMM_WORLD, owner, g.neighbours, 4);
      EXPECT_EQ(nccl.peers(), mpi.peers()) << name << " K=" << K;
    }
}

TEST_F(NcclExchange, NeighboursMatchMpi) {
  check_neighbours(factory(), compute_, {1, 2, 3, 5, 9}, 5, "nccl");
  check_neighbours(factory(), compute_, {5}, 4099, "nccl");  // larger adapters, odd size
}

TEST_F(NcclExchange, MovesMatchMpi) { check_moves(factory(), compute_, "nccl"); }

TEST_F(NcclExchange, GatherMatchesMpi) { check_gather(factory(), compute_, "nccl"); }

TEST_F(NcclExchange, AllreduceSumOfIntegers) {
  const int R = world_size(), me = world_rank();
  mira::NcclAdapterExchange ex(MPI_COMM_WORLD, mira::assignment_owners(R, R), mira::graph_ring(R).neighbours, 3,
                               binding_.device, compute_);
  const size_t n = 4097;
  std::vector<float> h(n), want(n, 0.0f);
  for (size_t i = 0; i < n; ++i) {
    h[i] = static_cast<float>((me + 1) * static_cast<int>(i % 7));
    for (int r = 0; r < R; ++r) want[i] += static_cast<float>((r + 1) * static_cast<int>(i % 7));
  }
  float* d = DeviceStore::dalloc(n);
  MIRA_CHECK_CUDA(cudaMemcpyAsync(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice, compute_));
  ex.allreduce_sum(d, n);
  std::vector<float> got(n);
  MIRA_CHECK_CUDA(cudaMemcpyAsync(got.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost, compute_));
  MIRA_CHECK_CUDA(cudaStreamSynchronize(compute_));
  EXPECT_EQ(got, want) << "integer sums are exact in any order";
  cudaFree(d);
}

#else

TEST(NcclExchange, NeedsCuda) {
  const std::string why = skip_reason(true, nullptr);
  GTEST_SKIP() << why;
}

#endif  // MIRA_HAVE_CUDA

}  // namespace
}  // namespace mira_gpu_mpi
