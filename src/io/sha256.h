// SHA-256 (FIPS 180-4) of byte strings and files: identifies the base model a checkpoint was
// trained on (root attribute base_model_sha256). Streaming, so multi-GB weight files need no copy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mira {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  // Finishes and returns the 32-byte digest as 64 lowercase hex characters; the object is then spent.
  std::string hex_digest();

 private:
  void compress(const unsigned char* block);
  uint32_t state_[8];
  unsigned char buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string sha256_hex(const void* data, size_t size);
// Hex digest of a file's contents; throws UserError naming the path when it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace mira
