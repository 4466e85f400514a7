// Validation of data inputs that used to pass unchecked: a pre-tokenised file's vocabulary and EOS
// (data_vocab: what train checks against the model and pads with), its /client_family ids (a
// negative one was an internal error, a huge one a huge allocation) and client_names length; the NI
// task list (a task listed twice, a BOM, an empty list); the client-count errors name run.clients,
// the key users set.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "data/byte_tokenizer.h"
#include "data/federated_dataset.h"
#include "data/ni.h"
#include "runtime/error.h"
#include "tests/support/pretokenized_file.h"

namespace mira {
namespace {

// A small pre-tokenised file: two clients, two examples each (3 tokens, the last one eos).
mira_test::PretokenizedFile pt_file() {
  mira_test::PretokenizedFile p;
  p.num_clients = 2;
  p.vocab_size = 64;
  p.eos_id = 63;
  p.tokens = {1, 2, 3, 4, 5, 3, 6, 7, 3, 8, 9, 3};
  p.labels = {0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1};
  p.offsets = {0, 3, 6, 9, 12};
  p.client = {0, 0, 1, 1};
  return p;
}

std::string write_pt(const std::string& name, const mira_test::PretokenizedFile& p) {
  const std::string path = testing::TempDir() + "/mira_dv_" + name + ".h5";
  mira_test::write_pretokenized(path, p);
  return path;
}

DataOptions pt_options(const std::string& path) {
  DataOptions o;
  o.source = DataSource::PRETOKENIZED;
  o.path = path;
  return o;
}

// The UserError message of f, or "(no error)".
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string load_error(const DataOptions& o) {
  ByteTokenizer tok;
  return error_of([&] { FederatedDataset d(o, tok, {0, 1}); });
}

std::string write_text(const std::string& name, const std::string& text) {
  const std::string path = testing::TempDir() + "/mira_dv_" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

DataOptions ni_options(const std::string& task_list) {
  DataOptions o;
  o.source = DataSource::NI;
  o.path = std::string(MIRA_FIXTURES_DIR) + "/data/ni/tasks";
  o.task_list = task_list;
  return o;
}

}  // namespace

TEST(DataVocab, PretokenizedDataBringsItsOwnVocabularyAndEos) {
  ByteTokenizer tok;  // 257 ids, pad 256: not what a pre-tokenised file's ids are checked against
  const DataVocab fixture = data_vocab(pt_options(std::string(MIRA_FIXTURES_DIR) + "/data/pretokenized_small.h5"), tok);
  EXPECT_TRUE(fixture.pretokenized);
  EXPECT_EQ(fixture.vocab_size, 257);
  EXPECT_EQ(fixture.pad_id, 256);
  const DataVocab small = data_vocab(pt_options(write_pt("v64", pt_file())), tok);
  EXPECT_TRUE(small.pretokenized);
  EXPECT_EQ(small.vocab_size, 64);
  EXPECT_EQ(small.pad_id, 63);  // the file's eos_id, not the tokenizer's 256 (outside a 64-id model)
  DataOptions synthetic;
  const DataVocab text = data_vocab(synthetic, tok);
  EXPECT_FALSE(text.pretokenized);
  EXPECT_EQ(text.vocab_size, 257);
  EXPECT_EQ(text.pad_id, 256);
  EXPECT_NE(error_of([&] { data_vocab(pt_options("/nonexistent/x.h5"), tok); }).find("data.path = /nonexistent/x.h5"),
            std::string::npos);
  const std::string wrong_format = write_text("not_h5.h5", "plain text\n");
  EXPECT_NE(error_of([&] { data_vocab(pt_options(wrong_format), tok); }).find("not an HDF5 file"), std::string::npos);
}

TEST(DataVocab, BadVocabularyAttributesAreRefusedByNameAtStartAndLoad) {
  ByteTokenizer tok;
  struct Case {
    const char* name;
    mira_test::PretokenizedFile file;
    std::string expect;
  };
  auto no_eos = pt_file();
  no_eos.eos_id.reset();
  auto eos_at_vocab = pt_file();
  eos_at_vocab.eos_id = 64;
  auto eos_negative = pt_file();
  eos_negative.eos_id = -1;
  auto vocab_zero = pt_file();
  vocab_zero.vocab_size = 0;
  vocab_zero.eos_id = 0;
  auto vocab_huge = pt_file();
  vocab_huge.vocab_size = 1LL << 40;
  const Case cases[] = {
      {"no_eos", no_eos, "missing attribute eos_id"},
      {"eos_at_vocab", eos_at_vocab, "attribute eos_id = 64 outside [0, vocab_size = 64)"},
      {"eos_negative", eos_negative, "attribute eos_id = -1 outside [0, vocab_size = 64)"},
      {"vocab_zero", vocab_zero, "attribute vocab_size = 0 outside [1, 2^31]"},
      {"vocab_huge", vocab_huge, "attribute vocab_size = 1099511627776 outside [1, 2^31]"},
  };
  for (const Case& c : cases) {
    const std::string path = write_pt(c.name, c.file);
    const std::string at_start = error_of([&] { data_vocab(pt_options(path), tok); });
    EXPECT_EQ(at_start.rfind(path + ": ", 0), 0u) << at_start;
    EXPECT_NE(at_start.find(c.expect), std::string::npos) << at_start;
    const std::string at_load = load_error(pt_options(path));
    EXPECT_NE(at_load.find(c.expect), std::string::npos) << at_load;
  }
}

TEST(PretokenizedValidation, ClientFamilyIdsAreRangeChecked) {
  // 2 clients, 4 examples: ids must lie in [0, max(num_clients, examples)) = [0, 4).
  auto ok = pt_file();
  ok.client_family = std::vector<int32_t>{0, 3};
  ByteTokenizer tok;
  FederatedDataset d(pt_options(write_pt("fam_ok", ok)), tok, {0, 1});
  EXPECT_EQ(d.client(1).family, 3);
  EXPECT_EQ(d.family_name(3), "family3");
  auto negative = pt_file();
  negative.client_family = std::vector<int32_t>{0, -1};
  const std::string neg_path = write_pt("fam_neg", negative);
  EXPECT_EQ(load_error(pt_options(neg_path)),
            neg_path + ": /client_family[1] = -1 outside [0, 4) (family ids number the task families: below "
                       "max(num_clients, examples))");
  auto just_out = pt_file();
  just_out.client_family = std::vector<int32_t>{4, 0};
  EXPECT_NE(load_error(pt_options(write_pt("fam_4", just_out))).find("/client_family[0] = 4 outside [0, 4)"),
            std::string::npos);
  // 1e8 allocated 1e8 family names (6 GB, 30 s) before the check: now refused at once.
  auto huge = pt_file();
  huge.client_family = std::vector<int32_t>{0, 100000000};
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(load_error(pt_options(write_pt("fam_huge", huge))).find("/client_family[1] = 100000000 outside [0, 4)"),
            std::string::npos);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

TEST(PretokenizedValidation, ClientNamesListEveryClient) {
  auto named = pt_file();
  named.client_names = "[\"alpha\", \"beta\"]";
  ByteTokenizer tok;
  FederatedDataset d(pt_options(write_pt("names_ok", named)), tok, {0, 1});
  EXPECT_EQ(d.client(0).task, "alpha");
  EXPECT_EQ(d.client(1).task, "beta");
  auto short_list = pt_file();
  short_list.client_names = "[\"alpha\"]";  // was padded silently with "client1"
  const std::string path = write_pt("names_short", short_list);
  EXPECT_EQ(load_error(pt_options(path)),
            path + ": attribute client_names lists 1 names but num_clients = 2 (one name per client)");
  auto long_list = pt_file();
  long_list.client_names = "[\"a\", \"b\", \"c\"]";
  EXPECT_NE(load_error(pt_options(write_pt("names_long", long_list))).find("lists 3 names but num_clients = 2"),
            std::string::npos);
}

TEST(DataValidation, ClientCountErrorsNameRunClients) {
  DataOptions pt = pt_options(write_pt("count", pt_file()));
  pt.num_clients = 5;
  const std::string msg = load_error(pt);
  EXPECT_EQ(msg.rfind("run.clients = 5 but ", 0), 0u) << msg;
  EXPECT_NE(msg.find("holds 2 clients (set 0 or 2)"), std::string::npos) << msg;
  DataOptions ni = ni_options(std::string(MIRA_FIXTURES_DIR) + "/data/ni/train_tasks.txt");
  ni.num_clients = 10;
  const std::string ni_msg = error_of([&] { ni_build_manifest(ni); });
  EXPECT_EQ(ni_msg.rfind("run.clients = 10 but ", 0), 0u) << ni_msg;
  DataOptions negative;
  negative.num_clients = -1;
  EXPECT_NE(error_of([&] { negative.validate(); }).find("config key run.clients:"), std::string::npos);
}

TEST(DataValidation, BadFractionsArePrintedShort) {  // %g: std::to_string's %f printed 1e300 with 300 digits
  DataOptions big;
  big.train_fraction = 1e300;
  EXPECT_EQ(error_of([&] { big.validate(); }), "config key data.train_fraction: must be in (0, 1), got 1e+300");
  DataOptions tiny;
  tiny.ni_keep_fraction = -1e-9;
  EXPECT_EQ(error_of([&] { tiny.validate(); }), "config key data.ni.keep_fraction: must be in (0, 1], got -1e-09");
}

TEST(NiTaskList, TaskListedTwiceIsRefusedWithFileAndLine) {
  const std::string list =
      write_text("ni_dup.txt", "task001_qa_demo\n# comment\ntask003_sentiment_demo\ntask001_qa_demo\n");
  EXPECT_EQ(error_of([&] { ni_build_manifest(ni_options(list)); }),
            "data.task_list = " + list + ":4: task task001_qa_demo is listed twice (first at line 1; each task is "
            "one client, list it once)");
  // Trailing blanks and CR do not make a second name.
  const std::string crlf = write_text("ni_dup_crlf.txt", "task001_qa_demo\r\ntask001_qa_demo \r\n");
  EXPECT_NE(error_of([&] { ni_build_manifest(ni_options(crlf)); }).find(":2: task task001_qa_demo is listed twice"),
            std::string::npos);
}

TEST(NiTaskList, ByteOrderMarkIsSkipped) {
  const std::string plain = std::string(MIRA_FIXTURES_DIR) + "/data/ni/train_tasks.txt";
  std::ifstream in(plain, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string bom = write_text("ni_bom.txt", "\xEF\xBB\xBF" + text);
  const NiManifest a = ni_build_manifest(ni_options(plain));
  const NiManifest b = ni_build_manifest(ni_options(bom));  // was "cannot open .../\ufefftask001_qa_demo.json"
  EXPECT_EQ(ni_manifest_to_json(a), ni_manifest_to_json(b));
  EXPECT_EQ(b.tasks.at(0).name, "task001_qa_demo");
}

TEST(NiTaskList, EmptyListIsStated) {
  for (const char* text : {"", "# only a comment\n\n", "\xEF\xBB\xBF\r\n"}) {
    const std::string list = write_text("ni_empty.txt", text);
    EXPECT_EQ(error_of([&] { ni_build_manifest(ni_options(list)); }),
              "data.task_list = " + list + ": lists no task (expected task names, one per line)");
  }
}

}  // namespace mira
