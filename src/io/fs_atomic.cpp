// POSIX implementation of the durable file steps (fs_atomic.h).
#include "io/fs_atomic.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "runtime/error.h"

namespace mira {
namespace {

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

void fsync_opened(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  MIRA_CHECK_ERRNO(fd >= 0, path);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  errno = err;
  MIRA_CHECK_ERRNO(rc == 0, path);
}

}  // namespace

void fs_fsync_file(const std::string& path) { fsync_opened(path, O_RDONLY); }

void fs_fsync_dir(const std::string& dir) { fsync_opened(dir, O_RDONLY | O_DIRECTORY); }

void fs_rename_durable(const std::string& from, const std::string& to) {
  MIRA_CHECK_ERRNO(::rename(from.c_str(), to.c_str()) == 0, from + " -> " + to);
  fs_fsync_dir(parent_dir(to));
}

void fs_replace_symlink(const std::string& dir, const std::string& link_name, const std::string& target) {
  // The pid keeps two processes sharing the directory from racing on one temporary name.
  std::string tmp = dir + "/." + link_name + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());  // a leftover from a crashed run; absence is fine
  MIRA_CHECK_ERRNO(::symlink(target.c_str(), tmp.c_str()) == 0, tmp);
  MIRA_CHECK_ERRNO(::rename(tmp.c_str(), (dir + "/" + link_name).c_str()) == 0, tmp + " -> " + dir + "/" + link_name);
  fs_fsync_dir(dir);
}

bool fs_is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool fs_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

void fs_make_dirs(const std::string& dir) {
  if (dir.empty() || fs_is_dir(dir)) return;
  std::string parent = parent_dir(dir);
  if (parent != dir) fs_make_dirs(parent);
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST)
    throw UserError("cannot create directory " + dir + ": " + std::strerror(errno));
  if (!fs_is_dir(dir)) throw UserError(dir + " exists and is not a directory");
}

}  // namespace mira
