// A pre-tokenised data file for tests, in the format of docs/data.md's `pretokenized` source (what
// scripts/prepare_data.py writes): the root attributes `format` (fixed-length string), `version`,
// `num_clients`, `vocab_size`, the optional `eos_id` (64-bit ints) and the optional `client_names`
// (JSON list, fixed-length string), then the 1-D datasets `/tokens` int32, `/labels` uint8,
// `/offsets` int64, `/client` int32 and the optional `/client_family` int32, in that order. Every
// field is written as given and nothing is checked, so a test can write a bad file too (another
// format, offsets that do not cover the tokens, an eos_id outside the vocabulary). A test sets only
// what it varies; the defaults are one client with one example {1, 2, 256} (the byte tokenizer's
// ids, 256 its EOS).
#pragma once
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mira_test {

struct PretokenizedFile {
  std::string format = "mira-pretokenized";
  long long version = 1;
  long long num_clients = 1;
  long long vocab_size = 257;
  std::optional<long long> eos_id = 256;     // empty: no eos_id attribute
  std::optional<std::string> client_names;   // JSON list; empty: no attribute
  std::vector<int32_t> tokens = {1, 2, 256};
  std::vector<uint8_t> labels = {0, 1, 1};   // 1 = trained token
  std::vector<int64_t> offsets = {0, 3};     // examples + 1
  std::vector<int32_t> client = {0};         // one per example
  std::optional<std::vector<int32_t>> client_family;  // empty: no /client_family
  hsize_t chunk = 0;  // > 0: /tokens and /labels in chunks of this many elements, Fletcher32 checksums
};

// Writes p to path (replacing any file there); false (and a test failure) when the file cannot be
// created.
inline bool write_pretokenized(const std::string& path, const PretokenizedFile& p) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  EXPECT_GE(f, 0) << path;
  if (f < 0) return false;
  hid_t scalar = H5Screate(H5S_SCALAR);
  auto put_string = [&](const char* attr, const std::string& text) {
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, text.size());
    hid_t a = H5Acreate2(f, attr, str, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, str, text.c_str());
    H5Aclose(a);
    H5Tclose(str);
  };
  auto put_int = [&](const char* attr, long long v) {
    hid_t a = H5Acreate2(f, attr, H5T_NATIVE_LLONG, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
  };
  put_string("format", p.format);
  put_int("version", p.version);
  put_int("num_clients", p.num_clients);
  put_int("vocab_size", p.vocab_size);
  if (p.eos_id) put_int("eos_id", *p.eos_id);
  if (p.client_names) put_string("client_names", *p.client_names);
  auto put = [&](const char* name, hid_t type, hsize_t n, const void* data, bool chunked) {
    hid_t sp = H5Screate_simple(1, &n, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked && p.chunk > 0) {
      H5Pset_chunk(dcpl, 1, &p.chunk);
      H5Pset_fletcher32(dcpl);
    }
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
  };
  put("tokens", H5T_NATIVE_INT32, p.tokens.size(), p.tokens.data(), true);
  put("labels", H5T_NATIVE_UINT8, p.labels.size(), p.labels.data(), true);
  put("offsets", H5T_NATIVE_INT64, p.offsets.size(), p.offsets.data(), false);
  put("client", H5T_NATIVE_INT32, p.client.size(), p.client.data(), false);
  if (p.client_family)
    put("client_family", H5T_NATIVE_INT32, p.client_family->size(), p.client_family->data(), false);
  H5Sclose(scalar);
  H5Fclose(f);
  return true;
}

}  // namespace mira_test
