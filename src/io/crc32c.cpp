// CRC32C (Castagnoli): portable slicing-by-8 tables, and the SSE4.2 `crc32` instruction in three
// interleaved streams whose partial checksums are joined with "shift by n zero bytes" tables.
// The instruction code is compiled with __attribute__((target("sse4.2"))) only, not a global
// -msse4.2, and chosen at run time (__builtin_cpu_supports), so the binary still runs without it.
#include "io/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MIRA_CRC32C_X86 1
#include <nmmintrin.h>
#endif

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

#ifdef MIRA_CRC32C_X86

// Stream lengths of the interleaved loop. The crc32 instruction has a latency of 3 cycles and a
// throughput of 1 per cycle, so three independent streams keep it busy. Long blocks (3 x 8 KiB)
// make the two joins per block negligible; short blocks (3 x 256 B) serve the rest of a buffer.
constexpr size_t LONG_LANE = 8192;
constexpr size_t SHORT_LANE = 256;

// Maps a raw CRC register c (no pre/post inversion) to its value after `zeros` more zero bytes.
// The map is linear over GF(2), so four 256-entry tables (one per byte of c) give it in 4 lookups.
struct Crc32cShift {
  std::array<std::array<uint32_t, 256>, 4> t{};
  explicit Crc32cShift(size_t zeros) {
    const auto& t0 = crc32c_tables().t[0];
    uint32_t bit_image[32];
    for (int b = 0; b < 32; ++b) {
      uint32_t c = 1u << b;
      for (size_t i = 0; i < zeros; ++i) c = (c >> 8) ^ t0[c & 0xFFu];  // one zero byte
      bit_image[b] = c;
    }
    for (int j = 0; j < 4; ++j)
      for (uint32_t n = 0; n < 256; ++n) {
        uint32_t v = 0;
        for (int b = 0; b < 8; ++b)
          if (n & (1u << b)) v ^= bit_image[8 * j + b];
        t[(size_t)j][n] = v;
      }
  }
  uint32_t operator()(uint32_t c) const {
    return t[0][c & 0xFFu] ^ t[1][(c >> 8) & 0xFFu] ^ t[2][(c >> 16) & 0xFFu] ^ t[3][c >> 24];
  }
};

const Crc32cShift& shift_long() {
  static const Crc32cShift s(LONG_LANE);
  return s;
}
const Crc32cShift& shift_short() {
  static const Crc32cShift s(SHORT_LANE);
  return s;
}

inline uint64_t load_u64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);  // x86 is little-endian: the byte stream order the CRC is defined on
  return v;
}

// Consumes blocks of 3 x `lane` bytes from (p, size) into the raw register c: three streams over
// the block's thirds, joined as crc(A B) = shift_|B|(crc(A)) ^ crc_from_0(B).
__attribute__((target("sse4.2"))) uint64_t crc32c_lanes(uint64_t c, const unsigned char*& p, size_t& size,
                                                         size_t lane, const Crc32cShift& shift) {
  while (size >= 3 * lane) {
    uint64_t c1 = 0, c2 = 0;
    const unsigned char* end = p + lane;
    do {
      c = _mm_crc32_u64(c, load_u64(p));
      c1 = _mm_crc32_u64(c1, load_u64(p + lane));
      c2 = _mm_crc32_u64(c2, load_u64(p + 2 * lane));
      p += 8;
    } while (p < end);
    c = shift((uint32_t)c) ^ (uint32_t)c1;
    c = shift((uint32_t)c) ^ (uint32_t)c2;
    p += 2 * lane;
    size -= 3 * lane;
  }
  return c;
}

__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t c = (uint32_t)~crc;
  while (size > 0 && (reinterpret_cast<uintptr_t>(p) & 7u) != 0) {  // to an 8-byte boundary
    c = _mm_crc32_u8((uint32_t)c, *p++);
    --size;
  }
  c = crc32c_lanes(c, p, size, LONG_LANE, shift_long());
  c = crc32c_lanes(c, p, size, SHORT_LANE, shift_short());
  for (; size >= 8; size -= 8, p += 8) c = _mm_crc32_u64(c, load_u64(p));
  for (; size > 0; --size) c = _mm_crc32_u8((uint32_t)c, *p++);
  return ~(uint32_t)c;
}

#endif  // MIRA_CRC32C_X86

using Crc32cFn = uint32_t (*)(const void*, size_t, uint32_t);

Crc32cFn crc32c_choose() {
#ifdef MIRA_CRC32C_X86
  if (crc32c_hardware_available()) {
    shift_long();  // build the join tables now, not inside the first timed call
    shift_short();
    return crc32c_sse42;
  }
#endif
  return crc32c_portable;
}

}  // namespace

uint32_t crc32c_portable(const void* data, size_t size, uint32_t crc) {
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

bool crc32c_hardware_available() {
#ifdef MIRA_CRC32C_X86
  return __builtin_cpu_supports("sse4.2");
#else
  return false;
#endif
}

uint32_t crc32c_hardware(const void* data, size_t size, uint32_t crc) {
#ifdef MIRA_CRC32C_X86
  if (crc32c_hardware_available()) return crc32c_sse42(data, size, crc);
#endif
  return crc32c_portable(data, size, crc);
}

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  static const Crc32cFn impl = crc32c_choose();
  return impl(data, size, crc);
}

}  // namespace mira
