// Safetensors reader and writer (see safetensors.h).
#include "io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace mira {

namespace {

constexpr uint64_t MAX_HEADER_BYTES = 100u << 20;  // the reference implementation's limit (100 MB)

int64_t dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return -1;
}

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw UserError("safetensors file " + path + ": " + what);
}

}  // namespace

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

float safetensors_f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3FFu) << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float safetensors_bf16_to_f32(uint16_t h) {
  const uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw UserError("cannot open safetensors file " + path + ": " + std::strerror(errno));
  const uint64_t size = (uint64_t)in.tellg();
  in.seekg(0);
  if (size < 8) bad(path, "truncated: " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint8_t lenb[8];
  in.read(reinterpret_cast<char*>(lenb), 8);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | lenb[i];
  if (hlen > MAX_HEADER_BYTES) bad(path, "bad header: header length " + std::to_string(hlen) + " is implausible");
  if (8 + hlen > size)
    bad(path, "truncated: header length " + std::to_string(hlen) + " exceeds the file size " + std::to_string(size));
  std::string header(hlen, '\0');
  in.read(&header[0], (std::streamsize)hlen);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    bad(path, std::string("bad header: not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) bad(path, "bad header: the JSON header is not an object");
  const uint64_t data_size = size - 8 - hlen;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) bad(path, "bad header: __metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) bad(path, "bad header: __metadata__ value '" + m.key() + "' is not a string");
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    SafetensorsEntry e;
    e.name = name;
    if (!v.is_object() || !v.contains("dtype") || !v["dtype"].is_string() || !v.contains("shape") ||
        !v["shape"].is_array() || !v.contains("data_offsets") || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2)
      bad(path, "bad header: tensor '" + name + "' needs dtype (string), shape (array), data_offsets ([begin, end])");
    e.dtype = v["dtype"].get<std::string>();
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) bad(path, "bad header: tensor '" + name + "' has a non-integer or negative dimension");
      e.shape.push_back(d.get<int64_t>());
    }
    for (int k = 0; k < 2; ++k)
      if (!v["data_offsets"][k].is_number_unsigned()) bad(path, "bad header: tensor '" + name + "' has bad data_offsets");
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    const int64_t es = dtype_size(e.dtype);
    if (es < 0) bad(path, "tensor '" + name + "' has unknown dtype '" + e.dtype + "'");
    if (e.end < e.begin) bad(path, "bad header: tensor '" + name + "' has data_offsets end < begin");
    if ((uint64_t)(e.numel() * es) != e.end - e.begin)
      bad(path, "bad header: tensor '" + name + "' has " + std::to_string(e.end - e.begin) + " bytes for " +
                    std::to_string(e.numel()) + " elements of " + e.dtype);
    if (e.end > data_size)
      bad(path, "truncated: tensor '" + name + "' ends at data byte " + std::to_string(e.end) + " but the data section has " +
                    std::to_string(data_size) + " bytes");
    f.index_[name] = f.entries_.size();
    f.entries_.push_back(std::move(e));
  }
  f.data_.resize(data_size);
  if (data_size > 0) in.read(reinterpret_cast<char*>(f.data_.data()), (std::streamsize)data_size);
  if (!in) bad(path, "read error in the data section");
  return f;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const SafetensorsEntry& SafetensorsFile::get(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (!e) bad(path_, "missing tensor '" + name + "'");
  return *e;
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name) const {
  const SafetensorsEntry& e = get(name);
  const int64_t n = e.numel();
  std::vector<float> out((size_t)n);
  const uint8_t* p = data_.data() + e.begin;
  if (e.dtype == "F32") {
    std::memcpy(out.data(), p, sizeof(float) * (size_t)n);
  } else if (e.dtype == "F16" || e.dtype == "BF16") {
    const bool bf = e.dtype == "BF16";
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
      out[(size_t)i] = bf ? safetensors_bf16_to_f32(h) : safetensors_f16_to_f32(h);
    }
  } else if (e.dtype == "F64") {
    for (int64_t i = 0; i < n; ++i) {
      double d;
      std::memcpy(&d, p + 8 * i, 8);
      out[(size_t)i] = (float)d;
    }
  } else {
    bad(path_, "tensor '" + name + "' has dtype " + e.dtype + "; supported: F32, F16, BF16, F64");
  }
  return out;
}

std::vector<int32_t> SafetensorsFile::read_i32(const std::string& name) const {
  const SafetensorsEntry& e = get(name);
  const int64_t n = e.numel();
  std::vector<int32_t> out((size_t)n);
  const uint8_t* p = data_.data() + e.begin;
  if (e.dtype == "I32") {
    std::memcpy(out.data(), p, sizeof(int32_t) * (size_t)n);
  } else if (e.dtype == "I64") {
    for (int64_t i = 0; i < n; ++i) {
      int64_t v;
      std::memcpy(&v, p + 8 * i, 8);
      if (v < INT32_MIN || v > INT32_MAX) bad(path_, "tensor '" + name + "' has an I64 value outside the int32 range");
      out[(size_t)i] = (int32_t)v;
    }
  } else {
    bad(path_, "tensor '" + name + "' has dtype " + e.dtype + "; supported here: I32, I64");
  }
  return out;
}

void safetensors_write(const std::string& path, const std::vector<SafetensorsTensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const SafetensorsTensorOut*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
  nlohmann::json j = nlohmann::json::object();
  if (!metadata.empty()) j["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto* t : sorted) {
    MIRA_CHECK((t->f32 != nullptr) != (t->i32 != nullptr), "tensor " + t->name + " needs exactly one data pointer");
    int64_t n = 1;
    for (int64_t d : t->shape) n *= d;
    const uint64_t bytes = 4 * (uint64_t)n;
    j[t->name] = {{"dtype", t->f32 ? "F32" : "I32"}, {"shape", t->shape}, {"data_offsets", {off, off + bytes}}};
    off += bytes;
  }
  std::string header = j.dump();
  while (header.size() % 8 != 0) header.push_back(' ');  // align the data section to 8 bytes
  const std::string tmp = path + ".tmp";
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  MIRA_CHECK_ERRNO(fp != nullptr, tmp);
  uint8_t lenb[8];
  uint64_t hl = header.size();
  for (int i = 0; i < 8; ++i) lenb[i] = (uint8_t)(hl >> (8 * i));
  bool ok = std::fwrite(lenb, 1, 8, fp) == 8 && std::fwrite(header.data(), 1, header.size(), fp) == header.size();
  for (const auto* t : sorted) {
    int64_t n = 1;
    for (int64_t d : t->shape) n *= d;
    const void* src = t->f32 ? (const void*)t->f32 : (const void*)t->i32;
    ok = ok && std::fwrite(src, 4, (size_t)n, fp) == (size_t)n;
  }
  ok = (std::fclose(fp) == 0) && ok;
  MIRA_CHECK_ERRNO(ok, tmp);
  MIRA_CHECK_ERRNO(std::rename(tmp.c_str(), path.c_str()) == 0, path);
}

}  // namespace mira
