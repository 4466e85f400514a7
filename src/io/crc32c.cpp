// CRC32C (Castagnoli) by slicing-by-8: eight 256-entry tables, built once, consume 8 bytes per step.
#include "io/crc32c.h"

#include <array>
#include <cstring>

namespace mira {
namespace {

constexpr uint32_t CRC32C_POLY = 0x82F63B78u;  // Castagnoli polynomial 0x1EDC6F41, bit-reflected

struct Crc32cTables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  Crc32cTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
      t[0][i] = c;
    }
    // t[j][i]: the CRC of byte i followed by j zero bytes, so 8 bytes fold in one step.
    for (int j = 1; j < 8; ++j)
      for (uint32_t i = 0; i < 256; ++i) t[j][i] = (t[j - 1][i] >> 8) ^ t[0][t[j - 1][i] & 0xFFu];
  }
};

const Crc32cTables& crc32c_tables() {
  static const Crc32cTables tables;
  return tables;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto& t = crc32c_tables().t;
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = ~crc;
  while (size >= 8) {
    // Little-endian load regardless of host byte order: the CRC is defined on the byte stream.
    uint32_t lo = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    lo ^= c;
    c = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
    p += 8;
    size -= 8;
  }
  while (size-- > 0) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFFu];
  return ~c;
}

}  // namespace mira
