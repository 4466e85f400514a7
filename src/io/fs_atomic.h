// Durable, atomic file-system steps for checkpoints (POSIX): fsync a file or a directory, rename
// durably, replace a symlink atomically. Errors throw InternalError naming the path and errno.
#pragma once
#include <string>

namespace mira {

// fsync(2) of a file's contents and metadata.
void fs_fsync_file(const std::string& path);
// fsync(2) of a directory, making renames/creations/unlinks in it durable.
void fs_fsync_dir(const std::string& dir);
// rename(2) `from` -> `to` (same file system, atomic), then fsync the parent directory of `to`.
void fs_rename_durable(const std::string& from, const std::string& to);
// Makes `dir/link_name` a symlink to `target` (relative to dir) atomically: the link is created
// under a temporary name and renamed over the old one, so readers see the old or the new link,
// never none. The directory is fsynced afterwards.
void fs_replace_symlink(const std::string& dir, const std::string& link_name, const std::string& target);
// mkdir -p; throws UserError naming the path when a component exists and is not a directory or
// cannot be created.
void fs_make_dirs(const std::string& dir);
bool fs_is_dir(const std::string& path);
bool fs_exists(const std::string& path);

}  // namespace mira
