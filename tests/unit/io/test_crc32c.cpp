// CRC32C: standard check values (RFC 3720 iSCSI vectors), agreement of the slicing-by-8 code with a
// bit-at-a-time reference for every length and alignment that exercises the 8-byte loop and tail,
// and agreement of the SSE4.2 code with the table code (skipped, with the reason, without SSE4.2).
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

namespace {

// Random bytes from a fixed 64-bit LCG (Knuth's MMIX constants): deterministic test data.
std::vector<unsigned char> lcg_bytes(size_t n, uint64_t seed) {
  std::vector<unsigned char> v(n);
  uint64_t x = seed;
  for (auto& b : v) b = (unsigned char)((x = x * 6364136223846793005ull + 1442695040888963407ull) >> 56);
  return v;
}

TEST(Crc32c, HardwareMatchesTableAtEveryLengthAndUnalignedOffset) {
  if (!mira::crc32c_hardware_available()) GTEST_SKIP() << "this CPU has no SSE4.2 crc32 instruction (or the build is not x86-64)";
  const std::vector<unsigned char> buf = lcg_bytes(300 + 16, 7);
  for (size_t off = 0; off < 16; ++off)
    for (size_t n = 0; n + off <= buf.size() && n <= 300; ++n) {
      const uint32_t table = mira::crc32c_portable(buf.data() + off, n);
      ASSERT_EQ(mira::crc32c_hardware(buf.data() + off, n), table) << "off " << off << " n " << n;
      ASSERT_EQ(mira::crc32c(buf.data() + off, n), table) << "dispatch, off " << off << " n " << n;
      // A running checksum continues alike (non-zero initial value).
      ASSERT_EQ(mira::crc32c_hardware(buf.data() + off, n, 0xDEADBEEFu), mira::crc32c_portable(buf.data() + off, n, 0xDEADBEEFu))
          << "seeded, off " << off << " n " << n;
    }
  EXPECT_EQ(mira::crc32c_hardware("123456789", 9), 0xE3069283u);
}

// Lengths around the interleaved blocks of the hardware code (3 x 256 B and 3 x 8 KiB) and their
// joins, at unaligned starts: the stream-joining tables are only used from 768 bytes on.
TEST(Crc32c, HardwareMatchesTableAcrossInterleavedBlockSizes) {
  if (!mira::crc32c_hardware_available()) GTEST_SKIP() << "this CPU has no SSE4.2 crc32 instruction (or the build is not x86-64)";
  const std::vector<unsigned char> buf = lcg_bytes(3 * 3 * 8192 + 64, 11);
  const size_t lengths[] = {767, 768, 769, 1535, 1536, 1543, 2304 + 7, 24575, 24576, 24577, 24576 + 768 + 13,
                            2 * 24576 + 3 * 768 + 40, 3 * 3 * 8192};
  for (size_t off : {0, 1, 3, 7, 9, 13})
    for (size_t n : lengths) {
      ASSERT_LE(off + n, buf.size());
      ASSERT_EQ(mira::crc32c_hardware(buf.data() + off, n), mira::crc32c_portable(buf.data() + off, n))
          << "off " << off << " n " << n;
    }
}

TEST(Crc32c, PortableMatchesBitwiseReference) {
  const std::vector<unsigned char> buf = lcg_bytes(1000, 3);
  for (size_t n : {0, 1, 7, 8, 9, 63, 1000})
    EXPECT_EQ(mira::crc32c_portable(buf.data(), n), crc32c_bitwise(buf.data(), n)) << "n " << n;
}

}  // namespace
