// HostStagedAdapterExchange (comm/nccl_exchange.h) under mpiexec with 1-4 ranks, label gpu: the
// exchange for ranks that share one GPU (NCCL refuses them) goes device -> host -> MPI -> host ->
// device. Neighbour exchange, moves and gather compared bit for bit with the host
// MpiAdapterExchange; comm_create_device_exchange picks this kind exactly when the binding says a
// GPU is shared. On a one-GPU machine np2-np4 are the shared case. Skips without a CUDA device.
#include "gpu_mpi_util.h"

#ifdef MIRA_HAVE_CUDA
#include "comm/nccl_exchange.h"
#include "runtime/check_cuda.h"
#endif

namespace mira_gpu_mpi {
namespace {

#ifdef MIRA_HAVE_CUDA

class StagedExchange : public DeviceExchangeFixture<mira::HostStagedAdapterExchange, /*NeedOwnGpu=*/false> {};

TEST_F(StagedExchange, FactoryPicksStagedWhenShared) {
  const int K = 5;
  auto ex = mira::comm_create_device_exchange(MPI_COMM_WORLD, mira::assignment_owners(K, world_size()),
                                              mira::graph_ring(K).neighbours, 3, binding_, compute_);
  const bool staged = dynamic_cast<mira::HostStagedAdapterExchange*>(ex.get()) != nullptr;
  EXPECT_EQ(staged, binding_.any_shared) << binding_.reason;
  if (!binding_.any_shared) {
    EXPECT_NE(dynamic_cast<mira::NcclAdapterExchange*>(ex.get()), nullptr);
  }
}

TEST_F(StagedExchange, NeighboursMatchMpi) {
  check_neighbours(factory(), compute_, {1, 2, 3, 5, 9}, 5, "staged");
  check_neighbours(factory(), compute_, {5}, 4099, "staged");
}

TEST_F(StagedExchange, MovesMatchMpi) { check_moves(factory(), compute_, "staged"); }

TEST_F(StagedExchange, GatherMatchesMpi) { check_gather(factory(), compute_, "staged"); }

#else

TEST(StagedExchange, NeedsCuda) {
  const std::string why = skip_reason(false, nullptr);
  GTEST_SKIP() << why;
}

#endif  // MIRA_HAVE_CUDA

}  // namespace
}  // namespace mira_gpu_mpi
