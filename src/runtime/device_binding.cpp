// Device binding (device_binding.h): the per-rank rule, the UUID collision check of one host, and
// the MPI gather of what every local rank sees. No CUDA call here: built in every configuration.
#include "runtime/device_binding.h"

#include <algorithm>
#include <cstdlib>
#include <map>

#include "runtime/check_mpi.h"
#include "runtime/error.h"

namespace mira {

namespace {

// "0", "0 and 2", "0, 1 and 3".
std::string list_text(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) s += (i + 1 == v.size()) ? " and " : ", ";
    s += std::to_string(v[i]);
  }
  return s;
}

std::string visible_text(const std::string& env) {
  return env == "(unset)" ? "CUDA_VISIBLE_DEVICES unset" : "CUDA_VISIBLE_DEVICES=" + env;
}

// The UUID local rank j chooses, "" when it sees no device.
std::string chosen_uuid(const DeviceView& v, int j) {
  const int idx = device_binding_index(static_cast<int>(v.uuids.size()), j);
  return idx < 0 ? std::string() : v.uuids[static_cast<size_t>(idx)];
}

}  // namespace

int device_binding_index(int visible_count, int local_rank) {
  if (visible_count <= 0) return -1;
  if (visible_count == 1) return 0;
  return local_rank % visible_count;
}

DeviceBinding device_binding_decide(const std::vector<DeviceView>& node, int local_rank,
                                    const DeviceBindingPolicy& policy, const std::string& host) {
  const int n = static_cast<int>(node.size());
  MIRA_CHECK(local_rank >= 0 && local_rank < n,
             "local rank " + std::to_string(local_rank) + " of " + std::to_string(n) + " views");
  for (int j = 0; j < n; ++j)
    for (const std::string& u : node[j].uuids)
      MIRA_CHECK(!u.empty(), "local rank " + std::to_string(j) + " reports a device without a UUID");

  // Local ranks by chosen UUID, in ascending local rank; groups in order of their first rank.
  std::vector<std::string> chosen(n);
  std::map<std::string, std::vector<int>> by_uuid;
  std::vector<std::string> order;
  for (int j = 0; j < n; ++j) {
    chosen[j] = chosen_uuid(node[j], j);
    if (chosen[j].empty()) continue;
    auto& g = by_uuid[chosen[j]];
    if (g.empty()) order.push_back(chosen[j]);
    g.push_back(j);
  }
  std::vector<std::string> collisions;
  for (const std::string& u : order)
    if (by_uuid[u].size() > 1) collisions.push_back(u);

  DeviceBinding b;
  const DeviceView& me = node[local_rank];
  const int count = static_cast<int>(me.uuids.size());
  b.device = device_binding_index(count, local_rank);
  b.any_shared = !collisions.empty();
  if (b.device < 0) {
    b.reason = "no CUDA device visible (" + visible_text(me.visible_env) + ")";
  } else {
    b.uuid = chosen[local_rank];
    b.sharing_local_ranks = by_uuid[b.uuid];
    b.shared = b.sharing_local_ranks.size() > 1;
    b.reason = "device " + std::to_string(b.device) + " " + b.uuid + " (" +
               (count == 1 ? std::string("the only visible device")
                           : "node-local rank " + std::to_string(local_rank) + " % " + std::to_string(count) +
                                 " visible devices") +
               ", " + visible_text(me.visible_env) + ")";
    if (b.shared) {
      std::vector<int> others;
      for (int j : b.sharing_local_ranks)
        if (j != local_rank) others.push_back(j);
      b.reason += ", shared with node-local rank" + std::string(others.size() > 1 ? "s " : " ") + list_text(others);
    }
  }
  if (collisions.empty() || policy.allow_shared) return b;

  // The refusal: the first colliding device in full, a count of the others.
  const std::vector<int>& g = by_uuid[collisions[0]];
  std::vector<int> world;
  std::string detail;
  for (int j : g) {
    world.push_back(node[j].world_rank);
    detail += (detail.empty() ? "" : "; ") + std::string("local rank ") + std::to_string(j) + ": device " +
              std::to_string(device_binding_index(static_cast<int>(node[j].uuids.size()), j)) + " of " +
              std::to_string(node[j].uuids.size()) + ", " + visible_text(node[j].visible_env);
  }
  b.refusal = "GPU binding on " + host + ": node-local ranks " + list_text(g) + " (world ranks " + list_text(world) +
              ") would share GPU " + collisions[0] + " (" + detail + ")";
  if (collisions.size() > 1)
    b.refusal += ", and " + std::to_string(collisions.size() - 1) + " more GPU(s) would be shared";
  b.refusal += ": give every rank its own GPU (srun --gpus-per-task=1, a different CUDA_VISIBLE_DEVICES per rank, "
               "or no more ranks per host than GPUs)";
  if (!policy.allow_hint.empty())
    b.refusal += ", or allow sharing with " + policy.allow_hint + " (they then take turns on it)";
  return b;
}

std::vector<std::string> device_binding_uuids(const DeviceReport& report) {
  std::vector<std::string> u;
  for (size_t i = 0; i < report.devices.size(); ++i) {
    MIRA_CHECK(report.devices[i].index == static_cast<int>(i),
               "device report skipped CUDA device " + std::to_string(i) + " (its properties could not be read)");
    u.push_back(report.devices[i].uuid);
  }
  return u;
}

std::string device_binding_visible_env() {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  return v ? std::string(v) : std::string("(unset)");
}

namespace {

// Every rank's string, in rank order, on every rank of `comm`.
std::vector<std::string> allgather_strings(MPI_Comm comm, const std::string& mine) {
  int size = 1;
  MIRA_CHECK_MPI(MPI_Comm_size(comm, &size));
  const int len = static_cast<int>(mine.size());
  std::vector<int> lens(size, 0), displs(size, 0);
  MIRA_CHECK_MPI(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm));
  for (int q = 1; q < size; ++q) displs[q] = displs[q - 1] + lens[q - 1];
  std::string all(static_cast<size_t>(displs[size - 1] + lens[size - 1]) + 1, '\0');  // +1: never empty
  MIRA_CHECK_MPI(MPI_Allgatherv(mine.data(), len, MPI_CHAR, &all[0], lens.data(), displs.data(), MPI_CHAR, comm));
  std::vector<std::string> out(size);
  for (int q = 0; q < size; ++q) out[q] = all.substr(static_cast<size_t>(displs[q]), static_cast<size_t>(lens[q]));
  return out;
}

// A DeviceView as one string: world rank, env, UUIDs, separated by '\n' (none of them holds one).
std::string view_pack(const DeviceView& v) {
  std::string s = std::to_string(v.world_rank) + "\n" + v.visible_env;
  for (const std::string& u : v.uuids) s += "\n" + u;
  return s;
}

DeviceView view_unpack(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t nl = s.find('\n', start);
    parts.push_back(s.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  MIRA_CHECK(parts.size() >= 2, "malformed device view '" + s + "'");
  DeviceView v;
  v.world_rank = std::stoi(parts[0]);
  v.visible_env = parts[1];
  v.uuids.assign(parts.begin() + 2, parts.end());
  return v;
}

}  // namespace

DeviceBinding device_binding_gather(MPI_Comm comm, const std::vector<std::string>& my_uuids,
                                    const std::string& visible_env, const DeviceBindingPolicy& policy) {
  DeviceView mine;
  MIRA_CHECK_MPI(MPI_Comm_rank(comm, &mine.world_rank));
  mine.visible_env = visible_env;
  mine.uuids = my_uuids;
  for (const std::string& u : my_uuids)
    MIRA_CHECK(!u.empty() && u.find('\n') == std::string::npos, "device UUID '" + u + "'");
  MIRA_CHECK(visible_env.find('\n') == std::string::npos, "CUDA_VISIBLE_DEVICES holds a newline");

  MPI_Comm local = MPI_COMM_NULL;
  MIRA_CHECK_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, mine.world_rank, MPI_INFO_NULL, &local));
  int local_rank = 0;
  std::vector<std::string> packed;
  try {
    MIRA_CHECK_MPI(MPI_Comm_rank(local, &local_rank));
    packed = allgather_strings(local, view_pack(mine));
  } catch (...) {
    MPI_Comm_free(&local);
    throw;
  }
  MIRA_CHECK_MPI(MPI_Comm_free(&local));

  std::vector<DeviceView> node;
  for (const std::string& p : packed) node.push_back(view_unpack(p));
  char name[MPI_MAX_PROCESSOR_NAME] = {0};
  int name_len = 0;
  MIRA_CHECK_MPI(MPI_Get_processor_name(name, &name_len));
  DeviceBinding b = device_binding_decide(node, local_rank, policy, std::string(name, static_cast<size_t>(name_len)));

  int here = b.any_shared ? 1 : 0, anywhere = 0;
  MIRA_CHECK_MPI(MPI_Allreduce(&here, &anywhere, 1, MPI_INT, MPI_MAX, comm));
  b.any_shared = anywhere != 0;
  return b;
}

}  // namespace mira
