// Which GPU each rank uses, and whether ranks on one host end up on the same physical device.
// The rule per rank: exactly one visible device (Slurm --gpus-per-task, or CUDA_VISIBLE_DEVICES set
// per rank) -> that one; otherwise node-local rank modulo the visible count. Indices alone cannot
// tell whether two ranks share a device (each may see "device 0" and both be the same GPU), so the
// ranks of a host exchange the UUIDs of their visible devices and compare the UUIDs they chose.
// Sharing is refused unless the caller allows it; when allowed, the adapter exchange must go
// through host memory with MPI (NCCL refuses two ranks on one device), on every rank.
//
// device_binding_decide is pure (tested on the CPU in every build, tests/unit/runtime);
// device_binding_gather is its MPI wrapper over MPI_COMM_TYPE_SHARED (tests/mpi/device_binding.cpp).
// Nothing here calls CUDA: the caller passes the UUIDs (runtime/devices.h, devices_query()).
#pragma once
#include <mpi.h>

#include <string>
#include <vector>

#include "runtime/devices.h"

namespace mira {

// What one node-local rank sees.
struct DeviceView {
  int world_rank = -1;              // rank in the communicator passed to device_binding_gather
  std::vector<std::string> uuids;   // visible devices in CUDA index order ("GPU-xxxxxxxx-...")
  std::string visible_env;          // CUDA_VISIBLE_DEVICES as that rank saw it; "(unset)" when unset
};

struct DeviceBindingPolicy {
  bool allow_shared = false;        // may several ranks use one device?
  std::string allow_hint;           // how the user allows it, quoted in the refusal ("run.share_devices = true")
};

struct DeviceBinding {
  int device = -1;                  // CUDA device index for this rank; -1 when it sees none
  std::string uuid;                 // the chosen device's UUID ("" when none)
  bool shared = false;              // another rank of this host chose the same UUID (allowed by the policy)
  std::vector<int> sharing_local_ranks;  // local ranks on this rank's device, ascending, this rank included
  bool any_shared = false;          // some rank shares its device: of this host (decide), of the whole
                                    // communicator (gather; the same on every rank): the adapter exchange
                                    // must then be MPI through host memory everywhere
  std::string reason;               // how the device was chosen, one line for the start-up banner
  std::string refusal;              // non-empty: one line saying why the run must stop (the same on every
                                    // rank of the host); the caller raises it as a UserError
};

// The rule above: -1 when count <= 0, 0 when count == 1, else local_rank % count.
int device_binding_index(int visible_count, int local_rank);

// The binding of node-local rank `local_rank`, given what every local rank of the host sees
// (`node[j]` is local rank j). A refusal when two or more ranks chose the same UUID and the policy
// does not allow sharing; it names the host, the colliding ranks (local and world), their
// CUDA_VISIBLE_DEVICES, and how to fix or allow it. Every local rank gets the same refusal.
DeviceBinding device_binding_decide(const std::vector<DeviceView>& node, int local_rank,
                                    const DeviceBindingPolicy& policy, const std::string& host = "this host");

// The UUIDs of a device report in CUDA index order (InternalError when the report skipped an index).
std::vector<std::string> device_binding_uuids(const DeviceReport& report);
// CUDA_VISIBLE_DEVICES of this process, "(unset)" when unset.
std::string device_binding_visible_env();

// Collective over `comm`: splits it by host (MPI_Comm_split_type SHARED, ordered by rank in comm),
// gathers every local rank's DeviceView, decides for this rank, and sets any_shared over the whole
// `comm`. `my_uuids` are this rank's visible devices in CUDA index order (tests pass made-up ones).
// Never throws for a refusal: check `refusal` (e.g. inside mpi_agree) so every rank stops alike.
DeviceBinding device_binding_gather(MPI_Comm comm, const std::vector<std::string>& my_uuids,
                                    const std::string& visible_env, const DeviceBindingPolicy& policy);

}  // namespace mira
