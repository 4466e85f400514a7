// MPI tests of device_binding_gather (runtime/device_binding.h) under 1-4 ranks: the UUIDs of the
// ranks of a host are gathered over MPI_COMM_TYPE_SHARED and every rank decides the same way. With
// the real devices (devices_query) on a machine without a GPU every rank reports "no device"; with
// made-up UUIDs: distinct GPUs never share, one GPU behind every rank is refused (the same one-line
// message on every rank of the host) unless allowed, and any_shared is the same on every rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

#include "runtime/device_binding.h"
#include "runtime/devices.h"

namespace mira {
namespace {

const DeviceBindingPolicy REFUSE{false, "run.share_devices = true"};
const DeviceBindingPolicy ALLOW{true, "run.share_devices = true"};

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

struct Local {
  int rank = 0, size = 1;
  int max_size = 1;  // largest host, over all hosts
};
Local local_layout() {
  Local l;
  MPI_Comm c;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank(), MPI_INFO_NULL, &c);
  MPI_Comm_rank(c, &l.rank);
  MPI_Comm_size(c, &l.size);
  MPI_Comm_free(&c);
  MPI_Allreduce(&l.size, &l.max_size, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return l;
}

bool same_on_every_rank(const std::string& s) {
  const int len = static_cast<int>(s.size());
  int lo = 0, hi = 0;
  MPI_Allreduce(&len, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&len, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (lo != hi) return false;
  std::string root = s;
  MPI_Bcast(&root[0], len, MPI_CHAR, 0, MPI_COMM_WORLD);
  int differ = root != s, any = 0;
  MPI_Allreduce(&differ, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return any == 0;
}

TEST(DeviceBindingMpi, RealDevices) {
  const DeviceReport rep = devices_query();
  const std::vector<std::string> uuids = device_binding_uuids(rep);
  const DeviceBinding b = device_binding_gather(MPI_COMM_WORLD, uuids, device_binding_visible_env(), ALLOW);
  if (uuids.empty()) {
    // This is what a machine without a GPU must give: no device, no refusal, nothing shared.
    std::printf("[ binding  ] rank %d: no device (%s; %s)\n", world_rank(), rep.unavailable.c_str(), b.reason.c_str());
    EXPECT_EQ(b.device, -1);
    EXPECT_NE(b.reason.find("no CUDA device visible"), std::string::npos) << b.reason;
    EXPECT_TRUE(b.refusal.empty()) << b.refusal;
    EXPECT_FALSE(b.shared);
  } else {
    std::printf("[ binding  ] rank %d: %s\n", world_rank(), b.reason.c_str());
    EXPECT_GE(b.device, 0);
    EXPECT_LT(b.device, static_cast<int>(uuids.size()));
    EXPECT_EQ(b.uuid, uuids[static_cast<size_t>(b.device)]);
    EXPECT_TRUE(b.refusal.empty()) << "sharing was allowed: " << b.refusal;
  }
  int any_shared = b.any_shared ? 1 : 0, lo = 0;
  MPI_Allreduce(&any_shared, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  EXPECT_EQ(lo, any_shared) << "any_shared must be the same on every rank";
}

TEST(DeviceBindingMpi, DistinctGpusNeverShare) {
  const DeviceBinding b = device_binding_gather(MPI_COMM_WORLD, {"GPU-fake-" + std::to_string(world_rank())},
                                                std::to_string(world_rank()), REFUSE);
  EXPECT_EQ(b.device, 0);
  EXPECT_EQ(b.uuid, "GPU-fake-" + std::to_string(world_rank()));
  EXPECT_FALSE(b.shared);
  EXPECT_FALSE(b.any_shared);
  EXPECT_TRUE(b.refusal.empty()) << b.refusal;
}

TEST(DeviceBindingMpi, OneGpuBehindEveryRank) {
  // Every rank launched with CUDA_VISIBLE_DEVICES=0 on a one-GPU host: each sees "device 0".
  const Local loc = local_layout();
  const DeviceBinding refused = device_binding_gather(MPI_COMM_WORLD, {"GPU-fake-one"}, "0", REFUSE);
  EXPECT_EQ(refused.device, 0);
  EXPECT_EQ(refused.any_shared, loc.max_size > 1);
  if (loc.size > 1) {
    if (world_rank() == 0) std::printf("[ refusal  ] %s\n", refused.refusal.c_str());
    EXPECT_FALSE(refused.refusal.empty());
    EXPECT_EQ(refused.refusal.find('\n'), std::string::npos);
    EXPECT_NE(refused.refusal.find("node-local ranks 0"), std::string::npos) << refused.refusal;
    EXPECT_NE(refused.refusal.find("CUDA_VISIBLE_DEVICES=0"), std::string::npos) << refused.refusal;
    EXPECT_NE(refused.refusal.find("run.share_devices = true"), std::string::npos) << refused.refusal;
    if (loc.size == loc.max_size && loc.max_size > 1) {
      int n = 0;
      MPI_Comm_size(MPI_COMM_WORLD, &n);
      if (n == loc.size) {
        EXPECT_TRUE(same_on_every_rank(refused.refusal)) << "one host: one message everywhere";
      }
    }
  } else {
    EXPECT_TRUE(refused.refusal.empty()) << refused.refusal;
  }

  const DeviceBinding allowed = device_binding_gather(MPI_COMM_WORLD, {"GPU-fake-one"}, "0", ALLOW);
  EXPECT_TRUE(allowed.refusal.empty()) << allowed.refusal;
  EXPECT_EQ(allowed.device, 0);
  EXPECT_EQ(allowed.shared, loc.size > 1);
  EXPECT_EQ(allowed.any_shared, loc.max_size > 1);
  EXPECT_EQ(static_cast<int>(allowed.sharing_local_ranks.size()), loc.size);
}

TEST(DeviceBindingMpi, TwoGpusPerHost) {
  const Local loc = local_layout();
  const DeviceBinding b = device_binding_gather(MPI_COMM_WORLD, {"GPU-fake-a", "GPU-fake-b"}, "(unset)", ALLOW);
  EXPECT_EQ(b.device, loc.rank % 2);
  EXPECT_EQ(b.uuid, loc.rank % 2 == 0 ? "GPU-fake-a" : "GPU-fake-b");
  EXPECT_EQ(b.any_shared, loc.max_size > 2);
  EXPECT_EQ(b.shared, loc.size > 2 && (loc.rank % 2 == 0 || loc.size > 3));
  const DeviceBinding r = device_binding_gather(MPI_COMM_WORLD, {"GPU-fake-a", "GPU-fake-b"}, "(unset)", REFUSE);
  EXPECT_EQ(r.refusal.empty(), loc.size <= 2) << r.refusal;
}

}  // namespace
}  // namespace mira
