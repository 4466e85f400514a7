// Start-up check of the data's token ids against the base model (app/run_setup.h), on every rank
// count: pre-tokenised data is checked by the file's own vocab_size (not the unused tokenizer's) and
// padded with its eos_id; a mismatch stops every rank with one message naming data.path and the
// model, before any work (the unchecked ids used to stop the run when a batch first reached the
// model). Other sources keep the tokenizer check.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <mpi.h>

#include <cstring>
#include <string>
#include <vector>

#include "app/config_load.h"
#include "app/run_setup.h"
#include "runtime/agree.h"
#include "runtime/error.h"

namespace mira {
namespace {

const std::string kModel64 = std::string(MIRA_FIXTURES_DIR) + "/model/gpt2_micro_fullft";  // vocab_size 64
const std::string kBytes257 = std::string(MIRA_FIXTURES_DIR) + "/data/pretokenized_small.h5";

void write_file(const std::string& path, long long vocab_size, long long eos_id) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  EXPECT_GE(f, 0);
  hid_t scalar = H5Screate(H5S_SCALAR);
  hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, std::strlen("mira-pretokenized"));
  hid_t a = H5Acreate2(f, "format", str, scalar, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, str, "mira-pretokenized");
  H5Aclose(a);
  const std::pair<const char*, long long> ints[] = {
      {"version", 1}, {"num_clients", 1}, {"vocab_size", vocab_size}, {"eos_id", eos_id}};
  for (const auto& kv : ints) {
    hid_t b = H5Acreate2(f, kv.first, H5T_NATIVE_LLONG, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(b, H5T_NATIVE_LLONG, &kv.second);
    H5Aclose(b);
  }
  auto put = [&](const char* ds, hid_t type, hsize_t n, const void* data) {
    hid_t sp = H5Screate_simple(1, &n, nullptr);
    hid_t d = H5Dcreate2(f, ds, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Sclose(sp);
  };
  const int32_t e = static_cast<int32_t>(eos_id);
  const int32_t tokens[6] = {1, 2, e, 3, 4, e};
  const uint8_t labels[6] = {0, 1, 1, 0, 1, 1};
  const int64_t offsets[3] = {0, 3, 6};
  const int32_t client[2] = {0, 0};
  put("tokens", H5T_NATIVE_INT32, 6, tokens);
  put("labels", H5T_NATIVE_UINT8, 6, labels);
  put("offsets", H5T_NATIVE_INT64, 3, offsets);
  put("client", H5T_NATIVE_INT32, 2, client);
  H5Tclose(str);
  H5Sclose(scalar);
  H5Fclose(f);
}

// One client, two examples, ids below vocab_size. Rank 0 writes it (the ranks share a host and the
// messages name the path, so every rank must see the same one); the name carries the rank count, so
// the np1..np4 runs of this test may run at once.
std::string write_pt(const std::string& name, long long vocab_size, long long eos_id) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::string path = testing::TempDir() + "/mira_vocab_" + name + "_np" + std::to_string(size) + ".h5";
  if (rank == 0) write_file(path, vocab_size, eos_id);
  MPI_Barrier(MPI_COMM_WORLD);
  return path;
}

Config config_of(const std::vector<std::string>& args) {
  return config_parse(args, [](const std::string& p) -> std::string { throw UserError("no file " + p); }).config;
}

// The agreed start-up message (every rank must get the same CollectiveUserError), or "".
std::string setup_error(const Config& c) {
  try {
    const DataOptions d = setup_data_options(c);
    std::unique_ptr<Tokenizer> tok = setup_tokenizer(d);
    const DataVocab ids = setup_data_vocab(d, *tok);
    setup_base_model(c, *tok, ids);
  } catch (const CollectiveUserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(RunSetupVocab, PretokenizedFileVocabularyIsCheckedNotTheTokenizers) {
  // The byte tokenizer has 257 ids, the model 64: refused before, although the file's ids fit.
  const std::string v64 = write_pt("v64", 64, 63);
  const Config c = config_of({"--data.source", "pretokenized", "--data.path", v64, "--model.path", kModel64});
  const DataOptions d = setup_data_options(c);
  std::unique_ptr<Tokenizer> tok = setup_tokenizer(d);
  EXPECT_EQ(tok->vocab_size(), 257);
  const DataVocab ids = setup_data_vocab(d, *tok);
  EXPECT_TRUE(ids.pretokenized);
  EXPECT_EQ(ids.vocab_size, 64);
  EXPECT_EQ(ids.pad_id, 63);  // the file's EOS: the tokenizer's 256 is outside the model's vocabulary
  const Gpt2HostModel host = setup_base_model(c, *tok, ids);
  EXPECT_EQ(host.config.vocab_size, 64);
}

TEST(RunSetupVocab, PretokenizedIdsBeyondTheModelAreRefusedAtStartUp) {
  const Config c = config_of({"--data.source", "pretokenized", "--data.path", kBytes257, "--model.path", kModel64});
  EXPECT_EQ(setup_error(c), "model.path '" + kModel64 + "' has vocab_size 64 but data.path = " + kBytes257 +
                                " (pre-tokenised) has vocab_size 257: tokenise the data with the model's own tokenizer "
                                "(scripts/prepare_data.py --tokenizer hf --tokenizer-path FOLDER)");
  // A preset is sized for the tokenizer (byte: 257 ids): a 300-id file does not fit it.
  const std::string v300 = write_pt("v300", 300, 299);
  const Config preset = config_of({"--data.source", "pretokenized", "--data.path", v300});
  EXPECT_EQ(setup_error(preset),
            "model.preset tiny has vocab_size 257 (the tokenizer's, byte) but data.path = " + v300 +
                " (pre-tokenised) has vocab_size 300: size the preset with the data's tokenizer (data.tokenizer = hf, "
                "data.tokenizer_path) or use model.path");
  // A file that fits the preset: accepted, padded with its own EOS.
  const std::string v200 = write_pt("v200", 200, 199);
  const Config fits = config_of({"--data.source", "pretokenized", "--data.path", v200});
  EXPECT_EQ(setup_error(fits), "");
  // A file whose eos_id lies outside its vocabulary: named at start-up, on every rank.
  const std::string bad_eos = write_pt("bad_eos", 64, 64);
  const std::string msg =
      setup_error(config_of({"--data.source", "pretokenized", "--data.path", bad_eos, "--model.path", kModel64}));
  EXPECT_EQ(msg, bad_eos + ": attribute eos_id = 64 outside [0, vocab_size = 64)");
}

TEST(RunSetupVocab, OtherSourcesKeepTheTokenizerCheck) {
  const Config c = config_of({"--model.path", kModel64});  // synthetic data, byte tokenizer
  EXPECT_EQ(setup_error(c), "model.path '" + kModel64 +
                                "' has vocab_size 64 but the tokenizer (byte) has 257 ids: use the model's own "
                                "tokenizer (data.tokenizer = hf, data.tokenizer_path)");
  const DataOptions d = setup_data_options(config_of({}));
  std::unique_ptr<Tokenizer> tok = setup_tokenizer(d);
  const DataVocab ids = setup_data_vocab(d, *tok);
  EXPECT_FALSE(ids.pretokenized);
  EXPECT_EQ(ids.pad_id, tok->pad_id());
}

}  // namespace mira
