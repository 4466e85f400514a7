// Pre-tokenised HDF5 (scripts/prepare_data.py output, committed fixture): the same examples per
// client as the JSONL reader gives for the same source file, and bad files refused by name.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstring>

#include <fstream>
#include <set>

#include "data/byte_tokenizer.h"
#include "data/federated_dataset.h"
#include "runtime/error.h"

namespace mira {

TEST(Pretokenized, MatchesTheJsonlReaderOnTheSameFile) {
  ByteTokenizer tok;
  DataOptions pre;
  pre.source = DataSource::PRETOKENIZED;
  pre.path = std::string(MIRA_FIXTURES_DIR) + "/data/pretokenized_small.h5";
  DataOptions js;
  js.source = DataSource::JSONL;
  js.path = std::string(MIRA_FIXTURES_DIR) + "/data/generic_small.jsonl";
  js.prompt_field = "prompt";
  js.input_field = "";
  js.response_field = "answer";
  js.client_field = "task";
  js.prompt_template = PromptTemplate::RAW;
  js.clients_per_category = 1;
  FederatedDataset a(pre, tok, {0, 1, 2});
  FederatedDataset b(js, tok, {0, 1, 2});
  ASSERT_EQ(a.num_clients(), 3);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(a.client(k).task, b.client(k).task.substr(0, b.client(k).task.find('/')));
    EXPECT_EQ(a.client(k).counts.train, 4);
    EXPECT_EQ(a.client(k).counts.test, 1);
    std::set<std::vector<int32_t>> sa, sb;
    for (const auto* s : {&a.train(k), &a.test(k)})
      for (const auto& e : *s) {
        sa.insert(e.ids);
        EXPECT_EQ(e.prompt_len, static_cast<int32_t>(std::find(e.labels.begin(), e.labels.end(), 1) - e.labels.begin()));
      }
    for (const auto* s : {&b.train(k), &b.test(k)})
      for (const auto& e : *s) sb.insert(e.ids);
    EXPECT_EQ(sa, sb);
  }
  DataOptions shortlen = pre;
  shortlen.max_length = 12;  // "spell the word w0" + "spell-w0" + EOS does not fit: prompt cut
  FederatedDataset c(shortlen, tok, {2});
  EXPECT_EQ(c.client(2).counts.truncated, 5);
  for (const auto& e : c.train(2)) EXPECT_EQ(e.ids.size(), 12u);
}

TEST(Pretokenized, BadFilesAreRefused) {
  ByteTokenizer tok;
  DataOptions o;
  o.source = DataSource::PRETOKENIZED;
  o.path = std::string(MIRA_FIXTURES_DIR) + "/data/generic_small.jsonl";
  try {
    FederatedDataset d(o, tok, {0});
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("not an HDF5 file"), std::string::npos);
  }
  o.path = "/nonexistent.h5";
  EXPECT_THROW(FederatedDataset(o, tok, {0}), UserError);
  // An HDF5 file of another format, and one whose offsets do not cover the tokens.
  auto write = [](const std::string& path, const char* format, int64_t last_offset) {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, std::strlen(format));
    hid_t a = H5Acreate2(f, "format", str, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, str, format);
    H5Aclose(a);
    const std::pair<const char*, long long> ints[] = {{"version", 1}, {"num_clients", 1}, {"vocab_size", 257}};
    for (const auto& kv : ints) {
      hid_t b = H5Acreate2(f, kv.first, H5T_NATIVE_LLONG, scalar, H5P_DEFAULT, H5P_DEFAULT);
      H5Awrite(b, H5T_NATIVE_LLONG, &kv.second);
      H5Aclose(b);
    }
    auto put = [&](const char* name, hid_t type, hsize_t n, const void* data) {
      hid_t sp = H5Screate_simple(1, &n, nullptr);
      hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
      H5Dclose(d);
      H5Sclose(sp);
    };
    const int32_t tokens[3] = {1, 2, 256};
    const uint8_t labels[3] = {0, 1, 1};
    const int64_t offsets[2] = {0, last_offset};
    const int32_t client[1] = {0};
    put("tokens", H5T_NATIVE_INT32, 3, tokens);
    put("labels", H5T_NATIVE_UINT8, 3, labels);
    put("offsets", H5T_NATIVE_INT64, 2, offsets);
    put("client", H5T_NATIVE_INT32, 1, client);
    H5Tclose(str);
    H5Sclose(scalar);
    H5Fclose(f);
  };
  auto message = [&](const std::string& path) {
    DataOptions p;
    p.source = DataSource::PRETOKENIZED;
    p.path = path;
    try {
      FederatedDataset d(p, tok, {0});
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string dir = testing::TempDir();
  write(dir + "/pt_good.h5", "mira-pretokenized", 3);
  EXPECT_EQ(message(dir + "/pt_good.h5"), "");
  write(dir + "/pt_format.h5", "something-else", 3);
  EXPECT_NE(message(dir + "/pt_format.h5").find("format is not 'mira-pretokenized'"), std::string::npos);
  write(dir + "/pt_offsets.h5", "mira-pretokenized", 2);
  EXPECT_NE(message(dir + "/pt_offsets.h5").find("/offsets"), std::string::npos);
}

}  // namespace mira
