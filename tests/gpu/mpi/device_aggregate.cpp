// MIRA eq. (8) and FedIT on device-resident adapters (fed/aggregate_device.h) under mpiexec with
// 1-4 ranks, label gpu: the exchange comm_create_device_exchange picks (NCCL with one GPU per rank,
// host-staged when ranks share one) feeding the aggregation kernels, compared BIT FOR BIT with the
// serial CPU references (mira_step_serial, fedit_average) on the same non-integer adapters, for
// several graphs, client counts, samples and both neighbour modes; FedIT with
// reproducible = false (ncclAllReduce of per-rank partial sums) within a float rounding bound.
// Skips without a CUDA device. tests/emu runs it on the emulator with distinct emulated devices.
#include <cmath>

#include "gpu_mpi_util.h"

#ifdef MIRA_HAVE_CUDA
#include "comm/nccl_exchange.h"
#include "fed/aggregate_device.h"
#include "runtime/check_cuda.h"
#include "runtime/rng.h"
#endif

namespace mira_gpu_mpi {
namespace {

#ifdef MIRA_HAVE_CUDA

// Non-integer values, so a changed order of operations would change bits.
std::vector<float> values(int c, size_t P, int64_t t) {
  mira::Rng r(77, mira::RngPurpose::DATA_SYNTH, static_cast<uint64_t>(c), static_cast<uint64_t>(t));
  std::vector<float> v(P);
  for (auto& x : v) x = static_cast<float>(2.0 * r.uniform() - 1.0);
  return v;
}

class DeviceAggregate : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = skip_reason(/*need_own_gpu=*/false, &binding_);
    if (!why.empty()) GTEST_SKIP() << why;
    MIRA_CHECK_CUDA(cudaSetDevice(binding_.device));
    MIRA_CHECK_CUDA(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking));
    if (world_rank() == 0)
      std::printf("[ device   ] %s; exchange: %s\n", binding_.reason.c_str(),
                  binding_.any_shared ? "host-staged (shared GPU)" : "NCCL");
  }
  void TearDown() override {
    if (compute_) cudaStreamDestroy(compute_);
  }
  std::unique_ptr<mira::AdapterExchange> make(const std::vector<int>& owner, const mira::Graph& g, size_t P) {
    return mira::comm_create_device_exchange(MPI_COMM_WORLD, owner, g.neighbours, P, binding_, compute_);
  }
  mira::DeviceBinding binding_;
  cudaStream_t compute_ = nullptr;
};

TEST_F(DeviceAggregate, MiraStepIsBitwiseTheSerialReference) {
  const int R = world_size(), me = world_rank();
  const size_t P = 1031;
  mira::DeviceAggregateWork work;
  int64_t t = 0;
  for (int K : {1, 3, 5, 9})
    for (auto& [name, g] : test_graphs(K)) {
      const std::vector<int> owner = mira::assignment_owners(K, R);
      auto ex = make(owner, g, P);
      DeviceStore ds(P, compute_);
      for (double f : {1.0, 0.5})
        for (mira::NeighbourMode mode : {mira::NeighbourMode::SAMPLED, mira::NeighbourMode::ALL_LATEST}) {
          ++t;
          const std::string at = name + " K=" + std::to_string(K) + " f=" + std::to_string(f) + " " +
                                 mira::fed_neighbour_mode_name(mode);
          std::vector<std::vector<float>> all(K);
          std::vector<float*> ptr(K);
          ds.quiesce();
          for (int c = 0; c < K; ++c) {
            all[c] = values(c, P, t);
            ptr[c] = all[c].data();
            if (owner[c] != me) continue;
            float*& d = ds.owned[c];
            if (!d) d = DeviceStore::dalloc(P);
            ds.set_async(d, c, all[c]);
          }
          const std::vector<int> s = mira::sampler_sample(5, t, K, mira::sampler_count(K, f));
          const double eta_lambda = 0.37;
          mira::mira_step_device(*ex, g, s, mode, eta_lambda, ds.owned_lookup(), compute_, work);
          mira::mira_step_serial(g, s, mode, eta_lambda, ptr, P);
          for (int c = 0; c < K; ++c) {
            if (owner[c] != me) continue;
            EXPECT_TRUE(same_bits(all[c], ds.read(ds.owned[c]).data(), P)) << at << " client " << c;
          }
        }
    }
}

TEST_F(DeviceAggregate, FeditIsBitwiseTheSerialReference) {
  const int R = world_size(), me = world_rank();
  const size_t P = 1031;
  mira::DeviceAggregateWork work;
  float* global = DeviceStore::dalloc(P);
  for (int K : {1, 3, 8}) {
    const std::vector<int> owner = mira::assignment_owners(K, R);
    const mira::Graph g = mira::graph_ring(K);
    auto ex = make(owner, g, P);
    DeviceStore ds(P, compute_);
    std::vector<int64_t> sizes(K);
    for (int c = 0; c < K; ++c) sizes[c] = 3 + 7 * c % 11;
    std::vector<std::vector<float>> all(K);
    ds.quiesce();
    for (int c = 0; c < K; ++c) {
      all[c] = values(c, P, 100 + K);
      if (owner[c] != me) continue;
      ds.owned[c] = DeviceStore::dalloc(P);
      ds.set_async(ds.owned[c], c, all[c]);
    }
    for (double f : {1.0, 0.5}) {
      const std::vector<int> s = mira::sampler_sample(9, K, K, mira::sampler_count(K, f));
      std::vector<const float*> in;
      std::vector<double> w;
      for (int c : s) in.push_back(all[c].data()), w.push_back(static_cast<double>(sizes[c]));
      std::vector<float> want(P);
      mira::fedit_average(want.data(), in.data(), w.data(), static_cast<int>(in.size()), P);
      const std::string at = "K=" + std::to_string(K) + " f=" + std::to_string(f);
      EXPECT_FALSE(mira::fedit_step_device(*ex, s, sizes, ds.owned_lookup(), global, true, compute_, work)) << at;
      EXPECT_TRUE(same_bits(want, ds.read(global).data(), P)) << at << ": reproducible FedIT differs";
      // Not reproducible: NCCL sums the ranks' partial sums; only the rounding of those may differ.
      const bool allreduce = mira::fedit_step_device(*ex, s, sizes, ds.owned_lookup(), global, false, compute_, work);
      EXPECT_EQ(allreduce, !binding_.any_shared) << at;
      const std::vector<float> got = ds.read(global);
      for (size_t i = 0; i < P; ++i)
        ASSERT_NEAR(got[i], want[i], 1e-6f * (1.0f + std::fabs(want[i])) * R) << at << " element " << i;
    }
  }
  cudaFree(global);
}

#else

TEST(DeviceAggregate, NeedsCuda) {
  const std::string why = skip_reason(false, nullptr);
  GTEST_SKIP() << why;
}

#endif  // MIRA_HAVE_CUDA

}  // namespace
}  // namespace mira_gpu_mpi
