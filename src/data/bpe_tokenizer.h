// GPT-2 byte-level BPE loaded from a Hugging Face model folder: tokenizer.json (merges as "a b"
// strings or ["a", "b"] pairs) or vocab.json + merges.txt. Pre-tokenisation uses GPT-2's regex
// through PCRE2 (UTF + UCP: std::regex has no Unicode classes), bytes are mapped to printable
// characters by GPT-2's byte-to-unicode table, added tokens (e.g. <|endoftext|>) are split out
// before pre-tokenisation as Hugging Face `tokenizers` does. Options that change ids are honoured
// (ByteLevel add_prefix_space, use_regex; BPE ignore_merges) or refused by name (dropout,
// byte_fallback, continuing_subword_prefix, end_of_word_suffix, normalizers, other pre-tokenizers).
// The post-processor is ignored: encode() adds no special tokens (add_special_tokens=False).
// Verified against `tokenizers` on committed fixtures (tests/unit/data/test_bpe_tokenizer.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/tokenizer.h"

namespace mira {

class BpeTokenizer : public Tokenizer {
 public:
  // folder: a Hugging Face model folder. UserError naming the file and the refused option.
  explicit BpeTokenizer(const std::string& folder);
  ~BpeTokenizer() override;
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t eos_id() const override { return eos_id_; }
  int32_t pad_id() const override { return eos_id_; }  // GPT-2 has no pad token: pad = EOS
  int32_t vocab_size() const override { return vocab_size_; }
  std::string name() const override { return "hf:" + folder_; }

  // Pre-tokenisation alone (GPT-2 regex pieces), exposed for tests.
  std::vector<std::string> pre_tokenize(const std::string& text) const;

 private:
  struct Impl;
  void load_tokenizer_json(const std::string& path);
  void load_vocab_merges(const std::string& vocab_path, const std::string& merges_path);
  void add_merge(const std::string& a, const std::string& b, const std::string& where);
  void finish(const std::string& where);
  void encode_piece(const std::string& piece, std::vector<int32_t>* out) const;
  void encode_text(const std::string& text, std::vector<int32_t>* out) const;

  std::string folder_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;        // (vocab_size) "" for unused ids
  std::vector<bool> id_is_added_;               // added tokens decode verbatim
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (a id, b id) -> (rank, merged id)
  std::vector<std::pair<std::string, int32_t>> added_;  // added tokens, longest first
  int32_t byte_id_[256] = {};                   // id of the single-character token of each byte
  std::string byte_char_[256];                  // GPT-2 byte-to-unicode, as UTF-8
  int32_t eos_id_ = -1;
  int32_t vocab_size_ = 0;
  bool add_prefix_space_ = false;
  bool use_regex_ = true;
  bool ignore_merges_ = false;
  std::unique_ptr<Impl> impl_;  // compiled regex and the piece cache
};

}  // namespace mira
