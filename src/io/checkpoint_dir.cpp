// Checkpoint directory management (checkpoint_dir.h).
#include "io/checkpoint_dir.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "io/fs_atomic.h"
#include "runtime/error.h"

namespace mira {
namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// Parses "ckpt-<digits>.h5" -> round; -1 otherwise.
int64_t parse_checkpoint_name(const std::string& name) {
  const std::string prefix = "ckpt-", suffix = ".h5";
  if (!starts_with(name, prefix) || !ends_with(name, suffix)) return -1;
  std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.empty() || digits.size() > 18) return -1;  // 18 digits fit int64 without overflow
  for (char c : digits)
    if (c < '0' || c > '9') return -1;
  return std::stoll(digits);
}

std::vector<std::string> list_names(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return names;
    MIRA_CHECK_ERRNO(d != nullptr, dir);
  }
  while (dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string read_link(const std::string& path) {
  std::vector<char> buf(4096);  // PATH_MAX on Linux
  ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
  if (n < 0) return "";
  return std::string(buf.data(), (size_t)n);
}

}  // namespace

std::string checkpoint_file_name(int64_t round) { return "ckpt-" + std::to_string(round) + ".h5"; }
std::string checkpoint_tmp_name(int64_t round) { return checkpoint_file_name(round) + ".tmp"; }

std::vector<CheckpointEntry> checkpoint_list(const std::string& dir) {
  std::vector<CheckpointEntry> out;
  for (const auto& name : list_names(dir)) {
    int64_t round = parse_checkpoint_name(name);
    if (round >= 0) out.push_back({round, dir + "/" + name});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.round < b.round; });
  return out;
}

std::string checkpoint_publish(const std::string& dir, int64_t round) {
  std::string tmp = dir + "/" + checkpoint_tmp_name(round);
  std::string final_path = dir + "/" + checkpoint_file_name(round);
  fs_fsync_file(tmp);
  fs_rename_durable(tmp, final_path);
  fs_replace_symlink(dir, CHECKPOINT_LATEST, checkpoint_file_name(round));
  return final_path;
}

int checkpoint_clean_stale(const std::string& dir) {
  int removed = 0;
  const std::string latest_tmp = std::string(".") + CHECKPOINT_LATEST + ".tmp.";
  for (const auto& name : list_names(dir)) {
    bool stale = (starts_with(name, "ckpt-") && ends_with(name, ".h5.tmp")) || starts_with(name, latest_tmp);
    if (!stale) continue;
    std::string path = dir + "/" + name;
    MIRA_CHECK_ERRNO(::unlink(path.c_str()) == 0 || errno == ENOENT, path);
    ++removed;
  }
  if (removed > 0) fs_fsync_dir(dir);
  return removed;
}

int checkpoint_keep_last(const std::string& dir, int keep) {
  MIRA_CHECK(keep >= 1, "keep=" + std::to_string(keep));
  std::string protected_name = read_link(dir + "/" + CHECKPOINT_LATEST);
  auto list = checkpoint_list(dir);
  int removed = 0;
  for (size_t i = 0; i + (size_t)keep < list.size(); ++i) {
    if (list[i].path == dir + "/" + protected_name) continue;
    MIRA_CHECK_ERRNO(::unlink(list[i].path.c_str()) == 0 || errno == ENOENT, list[i].path);
    ++removed;
  }
  if (removed > 0) fs_fsync_dir(dir);
  return removed;
}

std::string checkpoint_resolve(const std::string& path_or_dir) {
  if (!fs_is_dir(path_or_dir)) {
    if (!fs_exists(path_or_dir)) throw UserError("checkpoint " + path_or_dir + " does not exist");
    return path_or_dir;
  }
  std::string link = path_or_dir + "/" + CHECKPOINT_LATEST;
  std::string target = read_link(link);
  if (target.empty())
    throw UserError("checkpoint directory " + path_or_dir + " has no '" + CHECKPOINT_LATEST +
                    "' link (no finished checkpoint there); name a ckpt-<round>.h5 file instead");
  std::string path = target[0] == '/' ? target : path_or_dir + "/" + target;
  if (!fs_exists(path)) throw UserError(link + " points to " + path + ", which does not exist");
  return path;
}

}  // namespace mira
