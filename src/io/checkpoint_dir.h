// The checkpoint directory: file names (ckpt-<round>.h5, ckpt-<round>.h5.tmp, latest), listing,
// publishing a finished file (fsync, rename, fsync dir, atomic `latest`), removing stale temporary
// files and keeping the last N checkpoints. Rank-local POSIX steps; checkpoint.h runs them on rank 0
// of a communicator and makes every rank agree on the outcome.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mira {

inline constexpr const char* CHECKPOINT_LATEST = "latest";

std::string checkpoint_file_name(int64_t round);      // "ckpt-<round>.h5"
std::string checkpoint_tmp_name(int64_t round);       // "ckpt-<round>.h5.tmp"

struct CheckpointEntry {
  int64_t round = -1;
  std::string path;
};
// Finished checkpoints in `dir` (ckpt-<round>.h5, round a decimal number), oldest round first.
// A missing directory gives an empty list.
std::vector<CheckpointEntry> checkpoint_list(const std::string& dir);

// Makes the finished temporary file durable and visible: fsync(tmp), rename to ckpt-<round>.h5,
// fsync(dir), then points `latest` at it (symlink under a temporary name + rename), fsync(dir).
// Returns the final path.
std::string checkpoint_publish(const std::string& dir, int64_t round);

// Removes leftovers of interrupted writes (ckpt-*.h5.tmp, .latest.tmp.*); returns how many.
int checkpoint_clean_stale(const std::string& dir);

// Deletes all but the newest `keep` (>= 1) finished checkpoints, never the one `latest` points
// to; returns how many were deleted. The directory is fsynced when something was deleted.
int checkpoint_keep_last(const std::string& dir, int keep);

// A checkpoint file path, or a directory whose `latest` link names one; throws UserError naming the
// path when neither exists.
std::string checkpoint_resolve(const std::string& path_or_dir);

}  // namespace mira
