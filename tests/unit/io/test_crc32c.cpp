// CRC32C: standard check values (RFC 3720 iSCSI vectors) and agreement of the slicing-by-8 code with
// a bit-at-a-time reference for every length and alignment that exercises the 8-byte loop and tail.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "io/crc32c.h"

namespace {

uint32_t crc32c_bitwise(const unsigned char* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

TEST(Crc32c, StandardVectors) {
  const std::string check = "123456789";
  EXPECT_EQ(mira::crc32c(check.data(), check.size()), 0xE3069283u);
  std::vector<unsigned char> zeros(32, 0x00), ones(32, 0xFF), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[i] = (unsigned char)i;
    dec[i] = (unsigned char)(31 - i);
  }
  EXPECT_EQ(mira::crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(mira::crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(mira::crc32c(inc.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(mira::crc32c(dec.data(), 32), 0x113FDB5Cu);
  EXPECT_EQ(mira::crc32c(nullptr, 0), 0u);
}

TEST(Crc32c, MatchesBitwiseReferenceAtEveryLengthAndOffset) {
  std::vector<unsigned char> buf(300);
  uint32_t x = 12345;
  for (auto& b : buf) b = (unsigned char)((x = x * 1103515245u + 12345u) >> 16);  // fixed LCG bytes
  for (size_t off = 0; off < 8; ++off)
    for (size_t n = 0; n + off <= 200; ++n)
      ASSERT_EQ(mira::crc32c(buf.data() + off, n), crc32c_bitwise(buf.data() + off, n)) << "off " << off << " n " << n;
}

TEST(Crc32c, ContinuesARunningChecksum) {
  const std::string a = "hello, ", b = "checkpoint world";
  const std::string ab = a + b;
  EXPECT_EQ(mira::crc32c(b.data(), b.size(), mira::crc32c(a.data(), a.size())), mira::crc32c(ab.data(), ab.size()));
}

TEST(Crc32c, DetectsASingleBitFlip) {
  std::vector<float> v(1000, 0.25f);
  uint32_t before = mira::crc32c(v.data(), v.size() * sizeof(float));
  reinterpret_cast<unsigned char*>(v.data())[1234] ^= 0x10;
  EXPECT_NE(mira::crc32c(v.data(), v.size() * sizeof(float)), before);
}

}  // namespace
