// Natural Instructions: one task per client from a task-list file, in list order, following
// MIRA.md exactly: prompt from Definition[0] and the instance input, target output[0], family from
// Categories[0]; drop instances whose input has >= data.ni.max_input_chars code points (or an empty
// output[0]), skip the task if fewer than data.ni.min_instances remain, keep int(keep_fraction * n)
// sampled without replacement (Rng(seed, DATA_SPLIT, client, 1)), then split 80/20.
// Rank 0 builds the manifest once (reads every listed file) and broadcasts it; each rank then
// reads only the task files of its own clients.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "data/options.h"
#include "data/source.h"

namespace mira {

struct NiManifestTask {
  std::string name;      // task name as in the list (file <data.path>/<name>.json)
  std::string category;  // Categories[0]
  int64_t total = 0;     // instances in the file
  int64_t filtered = 0;  // instances left after the length / empty-output filter
  int64_t kept = 0;      // int(keep_fraction * filtered)
};

struct NiManifest {
  std::vector<NiManifestTask> tasks;      // client k = tasks[k]
  std::vector<std::string> skipped;       // listed tasks with fewer than min_instances left
  std::vector<std::string> categories;    // sorted; family id = index
};

// Reads the task list and the listed task files (UserError naming the file on any problem).
NiManifest ni_build_manifest(const DataOptions& opts);
std::string ni_manifest_to_json(const NiManifest& m);
NiManifest ni_manifest_from_json(const std::string& text);
// Rank 0 of comm builds the manifest and broadcasts it; every rank returns the same manifest. A
// UserError on rank 0 is re-raised on every rank as a CollectiveUserError (runtime/agree.h), so all
// ranks stop with the same message, printed once.
NiManifest ni_manifest_broadcast(const DataOptions& opts, MPI_Comm comm);

SourceData source_load_ni(const DataOptions& opts, const std::set<int>& needed, const NiManifest& manifest);

}  // namespace mira
