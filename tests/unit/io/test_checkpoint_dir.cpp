// Checkpoint directory steps without HDF5: publish (tmp -> final, `latest` moves), listing by round
// number, stale temporary cleanup, keep-last-N (never the `latest` target), and path resolution.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "io/checkpoint_dir.h"
#include "io/fs_atomic.h"
#include "runtime/error.h"

namespace {

class CheckpointDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mira_ckdir_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override { std::system(("rm -rf '" + dir + "'").c_str()); }
  void touch(const std::string& name, const std::string& text = "x") { std::ofstream(dir + "/" + name) << text; }
  std::string link_target() {
    char buf[256];
    ssize_t n = readlink((dir + "/latest").c_str(), buf, sizeof(buf));
    return n < 0 ? "" : std::string(buf, (size_t)n);
  }
  std::string dir;
};

TEST_F(CheckpointDir, PublishRenamesAndMovesLatest) {
  touch(mira::checkpoint_tmp_name(3), "round3");
  EXPECT_EQ(mira::checkpoint_publish(dir, 3), dir + "/ckpt-3.h5");
  EXPECT_FALSE(mira::fs_exists(dir + "/ckpt-3.h5.tmp"));
  EXPECT_TRUE(mira::fs_exists(dir + "/ckpt-3.h5"));
  EXPECT_EQ(link_target(), "ckpt-3.h5");
  touch(mira::checkpoint_tmp_name(10), "round10");
  mira::checkpoint_publish(dir, 10);
  EXPECT_EQ(link_target(), "ckpt-10.h5");
  EXPECT_EQ(mira::checkpoint_resolve(dir), dir + "/ckpt-10.h5");
  EXPECT_EQ(mira::checkpoint_resolve(dir + "/ckpt-3.h5"), dir + "/ckpt-3.h5");
  EXPECT_FALSE(mira::fs_exists(dir + "/.latest.tmp." + std::to_string(getpid())));
}

TEST_F(CheckpointDir, ListsFinishedCheckpointsByRoundNumber) {
  for (auto name : {"ckpt-10.h5", "ckpt-9.h5", "ckpt-100.h5", "ckpt-7.h5.tmp", "ckpt-x.h5", "ckpt-.h5", "other.h5"})
    touch(name);
  auto list = mira::checkpoint_list(dir);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].round, 9);
  EXPECT_EQ(list[1].round, 10);
  EXPECT_EQ(list[2].round, 100);
  EXPECT_EQ(list[2].path, dir + "/ckpt-100.h5");
  EXPECT_TRUE(mira::checkpoint_list(dir + "/missing").empty());
}

TEST_F(CheckpointDir, CleansStaleTemporaries) {
  touch("ckpt-4.h5.tmp");
  touch(".latest.tmp.999");
  touch("ckpt-3.h5");
  EXPECT_EQ(mira::checkpoint_clean_stale(dir), 2);
  EXPECT_FALSE(mira::fs_exists(dir + "/ckpt-4.h5.tmp"));
  EXPECT_FALSE(mira::fs_exists(dir + "/.latest.tmp.999"));
  EXPECT_TRUE(mira::fs_exists(dir + "/ckpt-3.h5"));
  EXPECT_EQ(mira::checkpoint_clean_stale(dir), 0);
}

TEST_F(CheckpointDir, KeepsTheNewestNAndTheLatestTarget) {
  for (int r : {1, 2, 3, 4, 5}) touch(mira::checkpoint_file_name(r));
  mira::fs_replace_symlink(dir, "latest", "ckpt-2.h5");  // e.g. newer files written by hand
  EXPECT_EQ(mira::checkpoint_keep_last(dir, 2), 2);      // 1 and 3 go; 2 is protected
  auto list = mira::checkpoint_list(dir);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].round, 2);
  EXPECT_EQ(list[1].round, 4);
  EXPECT_EQ(list[2].round, 5);
  EXPECT_THROW(mira::checkpoint_keep_last(dir, 0), mira::InternalError);
}

TEST_F(CheckpointDir, ResolveRefusesMissingThings) {
  EXPECT_THROW(mira::checkpoint_resolve(dir), mira::UserError);  // no latest
  EXPECT_THROW(mira::checkpoint_resolve(dir + "/ckpt-1.h5"), mira::UserError);
  mira::fs_replace_symlink(dir, "latest", "ckpt-1.h5");  // dangling
  try {
    mira::checkpoint_resolve(dir);
    FAIL() << "dangling latest accepted";
  } catch (const mira::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointDir, FsyncAndMakeDirs) {
  std::string nested = dir + "/a/b/c";
  mira::fs_make_dirs(nested);
  EXPECT_TRUE(mira::fs_is_dir(nested));
  mira::fs_fsync_dir(nested);
  touch("f");
  mira::fs_fsync_file(dir + "/f");
  EXPECT_THROW(mira::fs_fsync_file(dir + "/nope"), mira::InternalError);
  EXPECT_THROW(mira::fs_make_dirs(dir + "/f/g"), mira::UserError);
}

}  // namespace
