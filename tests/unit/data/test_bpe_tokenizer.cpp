// GPT-2 byte-level BPE against Hugging Face `tokenizers`: the committed reference encodings
// (scripts/make_tokenizer_fixtures.py) must match id for id, in all three file formats and for the
// option variants; decode(encode(x)) == x; refused options are named.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/bpe_tokenizer.h"
#include "runtime/error.h"

namespace mira {
namespace {

const std::string kDir = std::string(MIRA_FIXTURES_DIR) + "/data/bpe";

struct Ref {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Ref> load_refs(const std::string& file) {
  std::ifstream in(kDir + "/" + file);
  EXPECT_TRUE(in.good()) << file;
  std::vector<Ref> refs;
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    refs.push_back({j["text"].get<std::string>(), j["ids"].get<std::vector<int32_t>>()});
  }
  return refs;
}

// A folder holding only `file` renamed tokenizer.json (the loader reads <folder>/tokenizer.json).
std::string folder_with(const std::string& file) {
  const std::string dir = testing::TempDir() + "/bpe_" + file;
  std::string cmd = "mkdir -p '" + dir + "' && cp '" + kDir + "/" + file + "' '" + dir + "/tokenizer.json'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return dir;
}

void check_all(const BpeTokenizer& tok, const std::vector<Ref>& refs, bool round_trip) {
  int mismatches = 0;
  for (const Ref& r : refs) {
    const auto ids = tok.encode(r.text);
    if (ids != r.ids && ++mismatches <= 5) ADD_FAILURE() << "ids differ for " << nlohmann::json(r.text).dump();
    if (round_trip) {
      EXPECT_EQ(tok.decode(ids), r.text);
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << refs.size() << " lines";
}

}  // namespace

TEST(BpeTokenizer, MatchesHuggingFacePairMerges) {
  BpeTokenizer tok(folder_with("tokenizer_pairs.json"));
  const auto refs = load_refs("reference.jsonl");
  ASSERT_EQ(refs.size(), 2000u);
  check_all(tok, refs, true);
  EXPECT_EQ(tok.vocab_size(), 2300);
  EXPECT_EQ(tok.eos_id(), 0);  // the trainer's first special token
  EXPECT_EQ(tok.pad_id(), tok.eos_id());
}

TEST(BpeTokenizer, MatchesHuggingFaceStringMergesAndVocabMerges) {
  const auto refs = load_refs("reference.jsonl");
  BpeTokenizer strings(folder_with("tokenizer_strings.json"));
  check_all(strings, refs, false);
  BpeTokenizer vm(kDir + "/vm");  // vocab.json + merges.txt
  check_all(vm, refs, false);
}

// tokenizer_pairs.json with one pre-tokenizer option changed, in a folder of its own.
std::string folder_with_option(const char* key, bool value) {
  auto j = nlohmann::json::parse(std::ifstream(kDir + "/tokenizer_pairs.json"));
  j["pre_tokenizer"][key] = value;
  const std::string dir = testing::TempDir() + "/bpe_opt_" + key;
  EXPECT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0);
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  return dir;
}

TEST(BpeTokenizer, HonoursPrefixSpaceNoRegexIgnoreMerges) {
  BpeTokenizer prefix(folder_with_option("add_prefix_space", true));
  check_all(prefix, load_refs("reference_prefix.jsonl"), false);
  BpeTokenizer noregex(folder_with_option("use_regex", false));
  check_all(noregex, load_refs("reference_noregex.jsonl"), true);
  BpeTokenizer ignore(folder_with("tokenizer_ignore_merges.json"));
  check_all(ignore, load_refs("reference_ignore_merges.jsonl"), true);
}

TEST(BpeTokenizer, SpecialTokenSplitAndPreTokenizer) {
  BpeTokenizer tok(folder_with("tokenizer_pairs.json"));
  const auto ids = tok.encode("hi<|endoftext|>there");
  EXPECT_NE(std::find(ids.begin(), ids.end(), tok.eos_id()), ids.end());
  EXPECT_EQ(tok.decode(ids), "hi<|endoftext|>there");
  const std::vector<std::string> pieces = {"I", "'ll", " go", "  ", " 12", "!!", " \xC3\xA9t\xC3\xA9"};
  EXPECT_EQ(tok.pre_tokenize("I'll go   12!! \xC3\xA9t\xC3\xA9"), pieces);
  EXPECT_THROW(tok.encode("bad \xFF"), UserError);
  EXPECT_TRUE(tok.encode("").empty());
}

TEST(BpeTokenizer, RefusesOptionsThatChangeIdsByName) {
  auto j = nlohmann::json::parse(std::ifstream(kDir + "/tokenizer_pairs.json"));
  auto write = [&](const nlohmann::json& v, const std::string& name) {
    const std::string dir = testing::TempDir() + "/bpe_bad_" + name;
    EXPECT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0);
    std::ofstream(dir + "/tokenizer.json") << v.dump();
    return dir;
  };
  auto message = [](const std::string& dir) {
    try {
      BpeTokenizer t(dir);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto a = j;
  a["model"]["dropout"] = 0.1;
  EXPECT_NE(message(write(a, "dropout")).find("model.dropout"), std::string::npos);
  auto b = j;
  b["normalizer"] = {{"type", "NFC"}};
  EXPECT_NE(message(write(b, "norm")).find("normalizer"), std::string::npos);
  auto c = j;
  c["model"]["byte_fallback"] = true;
  EXPECT_NE(message(write(c, "bf")).find("byte_fallback"), std::string::npos);
  auto d = j;
  d["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_NE(message(write(d, "ws")).find("pre_tokenizer"), std::string::npos);
  // A TemplateProcessing post-processor (what transformers 5 saves for GPT-2) is accepted and
  // changes nothing: encode adds no special tokens.
  auto e = j;
  e["post_processor"] = nlohmann::json::parse(
      R"({"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}],
          "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
          "special_tokens": {}})");
  EXPECT_EQ(message(write(e, "tp")), "");
  BpeTokenizer tp(write(e, "tp"));
  const auto refs = load_refs("reference.jsonl");
  check_all(tp, std::vector<Ref>(refs.begin(), refs.begin() + 100), false);
  EXPECT_NE(message(testing::TempDir() + "/no_such_folder").find("neither tokenizer.json"), std::string::npos);
}

}  // namespace mira
