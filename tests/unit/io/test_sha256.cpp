// SHA-256 against the FIPS 180-4 / NIST example vectors, incremental updates split at every point,
// and the file variant against the in-memory one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "io/sha256.h"
#include "runtime/error.h"

namespace {

TEST(Sha256, NistVectors) {
  EXPECT_EQ(mira::sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(mira::sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(mira::sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  EXPECT_EQ(mira::sha256_hex(million.data(), million.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalUpdatesGiveTheSameDigest) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += (char)('a' + i % 26);
  const std::string whole = mira::sha256_hex(text.data(), text.size());
  for (size_t cut = 0; cut <= text.size(); cut += 7) {
    mira::Sha256 h;
    h.update(text.data(), cut);
    h.update(text.data() + cut, text.size() - cut);
    ASSERT_EQ(h.hex_digest(), whole) << "cut at " << cut;
  }
}

TEST(Sha256, FileDigestEqualsMemoryDigest) {
  char path[] = "/tmp/mira_sha256_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string content(3 * 1024 * 1024 + 17, 'x');  // > the 1 MiB read buffer, odd tail
  for (size_t i = 0; i < content.size(); i += 4099) content[i] = (char)(i % 251);
  ASSERT_EQ(write(fd, content.data(), content.size()), (ssize_t)content.size());
  close(fd);
  EXPECT_EQ(mira::sha256_file_hex(path), mira::sha256_hex(content.data(), content.size()));
  unlink(path);
  EXPECT_THROW(mira::sha256_file_hex(path), mira::UserError);
}

}  // namespace
