// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum the checkpoint stores per
// client slice (docs/checkpoint-format.md). Two implementations with identical results: the SSE4.2
// `crc32` instruction (x86-64, three interleaved streams) where the CPU has it, chosen at run time,
// and a portable slicing-by-8 table code everywhere else. crc32c("123456789") == 0xE3069283 (the
// standard check value).
#pragma once
#include <cstddef>
#include <cstdint>

namespace mira {

// CRC32C of `size` bytes, by the fastest implementation this CPU supports. Continue a running
// checksum by passing the previous result as `crc` (crc32c(b, crc32c(a)) == crc32c(a + b)).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

// The portable table implementation (slicing-by-8), on any CPU.
uint32_t crc32c_portable(const void* data, size_t size, uint32_t crc = 0);

// True when this build and CPU can use the SSE4.2 instruction (x86-64 with sse4.2).
bool crc32c_hardware_available();

// The SSE4.2 implementation. Where crc32c_hardware_available() is false (another architecture, or
// a CPU without SSE4.2) it runs the portable code instead, so it is safe to call anywhere.
uint32_t crc32c_hardware(const void* data, size_t size, uint32_t crc = 0);

}  // namespace mira
