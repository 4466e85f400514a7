// Device selection (a pure function: runs in every build) and the CUDA backend's behaviour where no
// device is usable: creating it must fail with a clear CUDA error, never crash.
#include "gpu_test_util.h"
#include "runtime/error.h"

using namespace mira;

TEST(CudaDeviceSelect, NoDevice) {
  const CudaDeviceChoice ch = cuda_select_device(0, 0, 1);
  EXPECT_EQ(ch.device, -1);
  EXPECT_FALSE(ch.reason.empty());
}

TEST(CudaDeviceSelect, OneVisibleDeviceIsUsedByEveryRank) {
  // e.g. srun --gpus-per-task=1: every rank sees its own device as index 0.
  for (int r = 0; r < 4; ++r) {
    const CudaDeviceChoice ch = cuda_select_device(1, r, 4);
    EXPECT_EQ(ch.device, 0);
    EXPECT_FALSE(ch.shared);  // may still be shared, but only UUIDs can tell (a later step)
  }
}

TEST(CudaDeviceSelect, BindsByNodeLocalRank) {
  for (int r = 0; r < 4; ++r) {
    const CudaDeviceChoice ch = cuda_select_device(4, r, 4);
    EXPECT_EQ(ch.device, r);
    EXPECT_FALSE(ch.shared);
  }
  // 8 ranks on 4 devices: two ranks per device, round robin, flagged as shared.
  for (int r = 0; r < 8; ++r) {
    const CudaDeviceChoice ch = cuda_select_device(4, r, 8);
    EXPECT_EQ(ch.device, r % 4);
    EXPECT_TRUE(ch.shared);
  }
  // Fewer ranks than devices: the first devices are used, none shared.
  EXPECT_EQ(cuda_select_device(8, 1, 2).device, 1);
  EXPECT_FALSE(cuda_select_device(8, 1, 2).shared);
}

TEST(CudaBackendNoDevice, CreationFailsWithTheCudaError) {
#ifndef MIRA_HAVE_CUDA
  GTEST_SKIP() << "no CUDA device: " << mira_gpu_test::cuda_unavailable_reason();
#else
  if (mira_gpu_test::cuda_unavailable_reason().empty()) GTEST_SKIP() << "a CUDA device is usable here";
  try {
    backend_create_cuda(0);
    FAIL() << "backend_create_cuda succeeded without a usable device";
  } catch (const InternalError& e) {
    const std::string msg = e.what();
    std::printf("[ message  ] %s\n", msg.c_str());
    EXPECT_NE(msg.find("CUDA"), std::string::npos) << msg;
    EXPECT_NE(msg.find("backend_cuda.cpp"), std::string::npos) << msg;  // names file:line
  }
#endif
}
