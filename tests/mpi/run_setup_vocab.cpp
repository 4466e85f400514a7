// Start-up check of the data's token ids against the base model (app/run_setup.h), on every rank
// count: pre-tokenised data is checked by the file's own vocab_size (not the unused tokenizer's) and
// padded with its eos_id; a mismatch stops every rank with one message naming data.path and the
// model, before any work (the unchecked ids used to stop the run when a batch first reached the
// model). Other sources keep the tokenizer check.
#include <gtest/gtest.h>
#include <mpi.h>

#include <string>
#include <vector>

#include "app/config_load.h"
#include "app/run_setup.h"
#include "runtime/agree.h"
#include "runtime/error.h"
#include "tests/support/pretokenized_file.h"

namespace mira {
namespace {

const std::string kModel64 = std::string(MIRA_FIXTURES_DIR) + "/model/gpt2_micro_fullft";  // vocab_size 64
const std::string kBytes257 = std::string(MIRA_FIXTURES_DIR) + "/data/pretokenized_small.h5";

// One client, two examples, ids below vocab_size. Rank 0 writes it (the ranks share a host and the
// messages name the path, so every rank must see the same one); the name carries the rank count, so
// the np1..np4 runs of this test may run at once.
std::string write_pt(const std::string& name, long long vocab_size, long long eos_id) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::string path = testing::TempDir() + "/mira_vocab_" + name + "_np" + std::to_string(size) + ".h5";
  if (rank == 0) {
    mira_test::PretokenizedFile file;
    file.vocab_size = vocab_size;
    file.eos_id = eos_id;
    const int32_t e = static_cast<int32_t>(eos_id);
    file.tokens = {1, 2, e, 3, 4, e};
    file.labels = {0, 1, 1, 0, 1, 1};
    file.offsets = {0, 3, 6};
    file.client = {0, 0};
    mira_test::write_pretokenized(path, file);
  }
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
