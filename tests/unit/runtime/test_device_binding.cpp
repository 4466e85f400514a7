// The device binding decision (runtime/device_binding.h), pure, on made-up UUIDs: one device per
// rank, ranks that each see "device 0" but the same GPU, more ranks than devices, permuted
// CUDA_VISIBLE_DEVICES lists, ranks without a device; the refusal text (one line, names the ranks,
// CUDA_VISIBLE_DEVICES and how to allow sharing) and the allowed sharing. Runs on the CPU in every build.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/backend_cuda.h"
#include "runtime/device_binding.h"
#include "runtime/error.h"

namespace mira {
namespace {

const DeviceBindingPolicy REFUSE{false, "run.share_devices = true"};
const DeviceBindingPolicy ALLOW{true, "run.share_devices = true"};

// n local ranks (world ranks first_world..), each seeing `uuids` with CUDA_VISIBLE_DEVICES `env`.
std::vector<DeviceView> same_view(int n, const std::vector<std::string>& uuids, const std::string& env = "(unset)",
                                  int first_world = 0) {
  std::vector<DeviceView> v(n);
  for (int j = 0; j < n; ++j) v[j] = DeviceView{first_world + j, uuids, env};
  return v;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(DeviceBinding, IndexRule) {
  EXPECT_EQ(device_binding_index(0, 0), -1);
  EXPECT_EQ(device_binding_index(-1, 3), -1);
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(device_binding_index(1, r), 0) << "exactly one visible device: that one";
    EXPECT_EQ(device_binding_index(4, r), r % 4);
    EXPECT_EQ(device_binding_index(3, r), r % 3);
  }
}

TEST(DeviceBinding, SameIndexAsCudaSelectDevice) {
  for (int count = 0; count <= 4; ++count)
    for (int n = 1; n <= 8; ++n)
      for (int r = 0; r < n; ++r)
        EXPECT_EQ(cuda_select_device(count, r, n).device, device_binding_index(count, r))
            << count << " devices, local rank " << r << " of " << n;
}

TEST(DeviceBinding, NoDeviceAnywhere) {
  const auto node = same_view(3, {});
  for (int r = 0; r < 3; ++r) {
    const DeviceBinding b = device_binding_decide(node, r, REFUSE, "nodeA");
    EXPECT_EQ(b.device, -1);
    EXPECT_TRUE(b.uuid.empty());
    EXPECT_FALSE(b.shared);
    EXPECT_FALSE(b.any_shared);
    EXPECT_TRUE(b.refusal.empty());
    EXPECT_TRUE(contains(b.reason, "no CUDA device visible")) << b.reason;
    EXPECT_TRUE(contains(b.reason, "CUDA_VISIBLE_DEVICES unset")) << b.reason;
  }
}

TEST(DeviceBinding, OneDistinctDevicePerRank) {
  // srun --gpus-per-task=1: every rank sees one device, each a different GPU.
  std::vector<DeviceView> node;
  for (int j = 0; j < 4; ++j) node.push_back(DeviceView{10 + j, {"GPU-" + std::to_string(j)}, std::to_string(j)});
  for (int r = 0; r < 4; ++r) {
    const DeviceBinding b = device_binding_decide(node, r, REFUSE);
    EXPECT_EQ(b.device, 0);
    EXPECT_EQ(b.uuid, "GPU-" + std::to_string(r));
    EXPECT_FALSE(b.shared);
    EXPECT_FALSE(b.any_shared);
    EXPECT_EQ(b.sharing_local_ranks, std::vector<int>{r});
    EXPECT_TRUE(b.refusal.empty()) << b.refusal;
    EXPECT_TRUE(contains(b.reason, "the only visible device")) << b.reason;
  }
}

TEST(DeviceBinding, BindByLocalRankOnAFullNode) {
  const auto node = same_view(4, {"GPU-a", "GPU-b", "GPU-c", "GPU-d"});
  for (int r = 0; r < 4; ++r) {
    const DeviceBinding b = device_binding_decide(node, r, REFUSE);
    EXPECT_EQ(b.device, r);
    EXPECT_EQ(b.uuid, node[0].uuids[r]);
    EXPECT_FALSE(b.shared);
    EXPECT_TRUE(b.refusal.empty());
    EXPECT_TRUE(contains(b.reason, "node-local rank " + std::to_string(r) + " % 4")) << b.reason;
  }
  // Fewer ranks than devices: the first devices, none shared.
  const auto two = same_view(2, {"GPU-a", "GPU-b", "GPU-c", "GPU-d"});
  EXPECT_EQ(device_binding_decide(two, 1, REFUSE).uuid, "GPU-b");
  EXPECT_TRUE(device_binding_decide(two, 1, REFUSE).refusal.empty());
}

TEST(DeviceBinding, SameGpuBehindDevice0IsRefusedWithOneLine) {
  // Both ranks launched with CUDA_VISIBLE_DEVICES=0: each sees "device 0", the same GPU.
  const auto node = same_view(2, {"GPU-same"}, "0", /*first_world=*/4);
  const DeviceBinding b0 = device_binding_decide(node, 0, REFUSE, "nodeA");
  const DeviceBinding b1 = device_binding_decide(node, 1, REFUSE, "nodeA");
  std::printf("[ refusal  ] %s\n", b0.refusal.c_str());
  EXPECT_FALSE(b0.refusal.empty());
  EXPECT_EQ(b0.refusal, b1.refusal) << "every rank of the host stops with the same message";
  EXPECT_EQ(b0.refusal.find('\n'), std::string::npos) << "one line";
  EXPECT_TRUE(contains(b0.refusal, "nodeA")) << b0.refusal;
  EXPECT_TRUE(contains(b0.refusal, "node-local ranks 0 and 1")) << b0.refusal;
  EXPECT_TRUE(contains(b0.refusal, "world ranks 4 and 5")) << b0.refusal;
  EXPECT_TRUE(contains(b0.refusal, "GPU-same")) << b0.refusal;
  EXPECT_TRUE(contains(b0.refusal, "CUDA_VISIBLE_DEVICES=0")) << b0.refusal;
  EXPECT_TRUE(contains(b0.refusal, "--gpus-per-task")) << b0.refusal;
  EXPECT_TRUE(contains(b0.refusal, "run.share_devices = true")) << b0.refusal;
  EXPECT_TRUE(b0.any_shared);

  // Allowed: both bound to device 0, flagged shared, no refusal.
  for (int r = 0; r < 2; ++r) {
    const DeviceBinding b = device_binding_decide(node, r, ALLOW);
    EXPECT_TRUE(b.refusal.empty()) << b.refusal;
    EXPECT_EQ(b.device, 0);
    EXPECT_TRUE(b.shared);
    EXPECT_TRUE(b.any_shared);
    EXPECT_EQ(b.sharing_local_ranks, (std::vector<int>{0, 1}));
    EXPECT_TRUE(contains(b.reason, "shared with node-local rank " + std::to_string(1 - r))) << b.reason;
  }
}

TEST(DeviceBinding, MoreRanksThanDevices) {
  // 4 ranks on 2 devices: ranks 0 and 2 on GPU-a, 1 and 3 on GPU-b.
  const auto node = same_view(4, {"GPU-a", "GPU-b"});
  const DeviceBinding b = device_binding_decide(node, 3, REFUSE);
  EXPECT_TRUE(contains(b.refusal, "node-local ranks 0 and 2")) << b.refusal;
  EXPECT_TRUE(contains(b.refusal, "GPU-a")) << b.refusal;
  EXPECT_TRUE(contains(b.refusal, "1 more GPU(s) would be shared")) << b.refusal;
  for (int r = 0; r < 4; ++r) {
    const DeviceBinding a = device_binding_decide(node, r, ALLOW);
    EXPECT_EQ(a.device, r % 2);
    EXPECT_TRUE(a.shared);
    EXPECT_EQ(a.sharing_local_ranks, (r % 2 == 0 ? std::vector<int>{0, 2} : std::vector<int>{1, 3}));
  }
  // Three ranks on two devices: rank 1 alone on GPU-b, but the host still shares GPU-a.
  const auto three = same_view(3, {"GPU-a", "GPU-b"});
  const DeviceBinding b1 = device_binding_decide(three, 1, ALLOW);
  EXPECT_FALSE(b1.shared);
  EXPECT_TRUE(b1.any_shared) << "the exchange kind is decided for the whole host";
  EXPECT_FALSE(device_binding_decide(three, 1, REFUSE).refusal.empty()) << "refused on every rank of the host";
}

TEST(DeviceBinding, PermutedVisibleListsCollideByUuid) {
  // Different CUDA_VISIBLE_DEVICES orders: rank 0 picks index 0 of (A, B), rank 1 index 1 of (B, A):
  // different indices, same GPU. Only UUIDs can tell.
  const std::vector<DeviceView> node{DeviceView{0, {"GPU-A", "GPU-B"}, "0,1"}, DeviceView{1, {"GPU-B", "GPU-A"}, "1,0"}};
  const DeviceBinding b = device_binding_decide(node, 1, REFUSE);
  EXPECT_EQ(b.device, 1);
  EXPECT_EQ(b.uuid, "GPU-A");
  EXPECT_TRUE(contains(b.refusal, "CUDA_VISIBLE_DEVICES=0,1")) << b.refusal;
  EXPECT_TRUE(contains(b.refusal, "CUDA_VISIBLE_DEVICES=1,0")) << b.refusal;
  EXPECT_TRUE(contains(b.refusal, "local rank 1: device 1 of 2")) << b.refusal;
}

TEST(DeviceBinding, RankWithoutDeviceNextToOneWithDevice) {
  const std::vector<DeviceView> node{DeviceView{0, {}, ""}, DeviceView{1, {"GPU-A"}, "0"}};
  const DeviceBinding b0 = device_binding_decide(node, 0, REFUSE);
  const DeviceBinding b1 = device_binding_decide(node, 1, REFUSE);
  EXPECT_EQ(b0.device, -1);
  EXPECT_TRUE(contains(b0.reason, "CUDA_VISIBLE_DEVICES=")) << b0.reason;  // set but empty
  EXPECT_EQ(b1.device, 0);
  EXPECT_TRUE(b0.refusal.empty() && b1.refusal.empty());
}

TEST(DeviceBinding, NoHintMeansNoAllowClause) {
  const auto node = same_view(2, {"GPU-same"});
  const DeviceBinding b = device_binding_decide(node, 0, DeviceBindingPolicy{false, ""});
  EXPECT_FALSE(b.refusal.empty());
  EXPECT_FALSE(contains(b.refusal, "allow sharing")) << b.refusal;
}

TEST(DeviceBinding, BadInputIsAnInternalError) {
  const auto node = same_view(2, {"GPU-a"});
  EXPECT_THROW(device_binding_decide(node, 2, REFUSE), InternalError);
  EXPECT_THROW(device_binding_decide(node, -1, REFUSE), InternalError);
  EXPECT_THROW(device_binding_decide(same_view(1, {""}), 0, REFUSE), InternalError);
}

TEST(DeviceBinding, UuidsOfADeviceReport) {
  DeviceReport r;
  EXPECT_TRUE(device_binding_uuids(r).empty());
  r.devices.resize(2);
  r.devices[0].index = 0;
  r.devices[0].uuid = "GPU-0";
  r.devices[1].index = 1;
  r.devices[1].uuid = "GPU-1";
  EXPECT_EQ(device_binding_uuids(r), (std::vector<std::string>{"GPU-0", "GPU-1"}));
  r.devices[1].index = 2;  // device 1's properties could not be read
  EXPECT_THROW(device_binding_uuids(r), InternalError);
}

}  // namespace
}  // namespace mira
