// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum the checkpoint stores per
// client slice (docs/checkpoint-format.md). Portable slicing-by-8; no hardware instruction, so the
// value is the same on every machine. crc32c("123456789") == 0xE3069283 (the standard check value).
#pragma once
#include <cstddef>
#include <cstdint>

namespace mira {

// CRC32C of `size` bytes. Continue a running checksum by passing the previous result as `crc`
// (crc32c(b, crc32c(a)) == crc32c(a + b)).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

}  // namespace mira
