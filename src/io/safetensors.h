// The safetensors container (https://github.com/huggingface/safetensors), hand-written: an 8-byte
// little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
// "__metadata__": {str: str}}, then the raw little-endian tensor data (offsets relative to its start).
// The reader validates everything against the file size and throws UserError naming the file and the
// tensor; it converts F32/F16/BF16/F64 to float32 on request. The writer writes F32 (and I32) tensors,
// e.g. for PEFT adapter export.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mira {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;            // "F32", "F16", "BF16", "F64", "I32", "I64", "U8", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Reads and validates the whole file; UserError on any malformed content.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* find(const std::string& name) const;  // nullptr when absent
  // The tensor converted to float32 (F32, F16, BF16, F64); UserError for any other dtype.
  std::vector<float> read_f32(const std::string& name) const;
  // The tensor as int32 (I32, or I64 values that fit); UserError otherwise.
  std::vector<int32_t> read_i32(const std::string& name) const;

 private:
  const SafetensorsEntry& get(const std::string& name) const;
  std::string path_;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  std::vector<uint8_t> data_;  // the data section
};

// One tensor to write: float32 data (or int32 when i32 is non-null).
struct SafetensorsTensorOut {
  std::string name;
  std::vector<int64_t> shape;
  const float* f32 = nullptr;
  const int32_t* i32 = nullptr;
};

// Writes the tensors (sorted by name, as the reference implementation does) and the metadata to
// path via path.tmp + rename, so a reader never sees a half-written file.
void safetensors_write(const std::string& path, const std::vector<SafetensorsTensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// IEEE half / bfloat16 bit patterns to float (exact).
float safetensors_f16_to_f32(uint16_t h);
float safetensors_bf16_to_f32(uint16_t h);

}  // namespace mira
