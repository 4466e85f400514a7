// Pre-tokenised HDF5 (scripts/prepare_data.py output, committed fixture): the same examples per
// client as the JSONL reader gives for the same source file, only the needed clients' rows read
// (a counter, and a file whose other clients' chunks are corrupt), and bad files refused by name.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <fstream>
#include <map>
#include <set>

#include "data/byte_tokenizer.h"
#include "data/federated_dataset.h"
#include "data/source.h"
#include "runtime/error.h"
#include "tests/support/pretokenized_file.h"

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

TEST(Pretokenized, ReadsOnlyTheRowsOfTheNeededClients) {
  DataOptions pre;
  pre.source = DataSource::PRETOKENIZED;
  pre.path = std::string(MIRA_FIXTURES_DIR) + "/data/pretokenized_small.h5";
  auto tokens_of = [](const SourceData& d, int k) {
    int64_t n = 0;
    for (const auto* s : {&d.clients[k].train_tok, &d.clients[k].test_tok})
      for (const auto& e : *s) n += static_cast<int64_t>(e.ids.size());
    return n;
  };
  const SourceData full = source_load_pretokenized(pre, {0, 1, 2});
  EXPECT_EQ(full.tokens_read, 380);  // the whole /tokens (prepare_data.py: 380 tokens)
  EXPECT_EQ(tokens_of(full, 0) + tokens_of(full, 1) + tokens_of(full, 2), 380);
  const SourceData none = source_load_pretokenized(pre, {});
  EXPECT_EQ(none.tokens_read, 0);
  for (const std::set<int>& needed : {std::set<int>{1}, std::set<int>{0, 2}, std::set<int>{2}}) {
    const SourceData part = source_load_pretokenized(pre, needed);
    int64_t expect = 0;
    for (int k : needed) expect += tokens_of(full, k);
    EXPECT_EQ(part.tokens_read, expect);
    for (int k = 0; k < 3; ++k) {
      const SourceClient& a = part.clients[k];
      const SourceClient& b = full.clients[k];
      EXPECT_EQ(a.loaded, needed.count(k) == 1);
      EXPECT_EQ(a.n_train, b.n_train);
      EXPECT_EQ(a.n_test, b.n_test);
      if (!a.loaded) continue;
      ASSERT_EQ(a.train_tok.size(), b.train_tok.size());
      for (size_t i = 0; i < a.train_tok.size(); ++i) {
        EXPECT_EQ(a.train_tok[i].ids, b.train_tok[i].ids);
        EXPECT_EQ(a.train_tok[i].labels, b.train_tok[i].labels);
      }
      ASSERT_EQ(a.test_tok.size(), b.test_tok.size());
      for (size_t i = 0; i < a.test_tok.size(); ++i) EXPECT_EQ(a.test_tok[i].ids, b.test_tok[i].ids);
    }
  }
}

// /tokens and /labels chunked (4 elements) with Fletcher32 checksums; client 0 owns rows 0-1
// (tokens [0, 8)), client 1 rows 2-3 (tokens [8, 16)). Client 1's chunks are then overwritten on
// disk: reading them fails the checksum, so loading client 0 proves they were never read.
TEST(Pretokenized, UnneededRowsAreNeverRead) {
  const std::string path = testing::TempDir() + "/pt_corrupt_other_client.h5";
  mira_test::PretokenizedFile file;
  file.num_clients = 2;
  file.tokens = {10, 11, 12, 256, 13, 14, 15, 256, 20, 21, 22, 256, 23, 24, 25, 256};
  file.labels = {0, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1};
  file.offsets = {0, 4, 8, 12, 16};
  file.client = {0, 0, 1, 1};
  file.chunk = 4;
  ASSERT_TRUE(mira_test::write_pretokenized(path, file));
  std::map<std::string, std::vector<std::pair<haddr_t, hsize_t>>> chunks;  // client 1's chunks
  {  // where client 1's chunks (rows from 8 and from 12) lie in the file
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    for (const char* name : {"tokens", "labels"}) {
      hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
      for (hsize_t at : {hsize_t(8), hsize_t(12)}) {
        unsigned mask = 0;
        haddr_t addr = 0;
        hsize_t size = 0;
        ASSERT_GE(H5Dget_chunk_info_by_coord(d, &at, &mask, &addr, &size), 0);
        chunks[name].push_back({addr, size});
      }
      H5Dclose(d);
    }
    H5Fclose(f);
  }
  ByteTokenizer tok;
  DataOptions o;
  o.source = DataSource::PRETOKENIZED;
  o.path = path;
  {
    FederatedDataset intact(o, tok, {0, 1});  // the file reads whole before the damage
    EXPECT_EQ(intact.client(1).counts.train + intact.client(1).counts.test, 2);
  }
  ASSERT_EQ(chunks.size(), 2u);
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    for (const auto& [name, list] : chunks)
      for (const auto& [addr, size] : list) {
        std::string bytes(static_cast<size_t>(size), '\0');
        io.seekg(static_cast<std::streamoff>(addr));
        io.read(bytes.data(), static_cast<std::streamsize>(size));
        for (size_t i = 0; i + 4 < bytes.size(); ++i) bytes[i] = static_cast<char>(bytes[i] ^ 0x55);  // data, not sum
        io.seekp(static_cast<std::streamoff>(addr));
        io.write(bytes.data(), static_cast<std::streamsize>(size));
      }
    ASSERT_TRUE(io.good());
  }
  FederatedDataset d(o, tok, {0});
  EXPECT_EQ(d.client(1).counts.train, 1);  // metadata of the other client still complete
  EXPECT_EQ(d.client(1).counts.test, 1);
  std::set<std::vector<int32_t>> got;
  for (const auto* s : {&d.train(0), &d.test(0)})
    for (const auto& e : *s) got.insert(e.ids);
  EXPECT_EQ(got, (std::set<std::vector<int32_t>>{{10, 11, 12, 256}, {13, 14, 15, 256}}));
  try {
    FederatedDataset bad(o, tok, {1});
    FAIL() << "client 1's corrupt rows were read without an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": cannot read /tokens[8, 16)"), std::string::npos) << e.what();
  }
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
    mira_test::PretokenizedFile file;  // one client, one example {1, 2, 256}
    file.format = format;
    file.offsets = {0, last_offset};
    mira_test::write_pretokenized(path, file);
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
