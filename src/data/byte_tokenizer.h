// ByteTokenizer: ids 0..255 are the bytes of the UTF-8 text, 256 is <|endoftext|> (EOS and pad).
// For the tiny demo models: no vocabulary file, any byte string round-trips exactly.
#pragma once
#include "data/tokenizer.h"

namespace mira {

class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int32_t EOS = 256;  // the first id after the 256 byte values
  std::vector<int32_t> encode(const std::string& text) const override;
  // EOS and other non-byte ids decode to "<|endoftext|>" so logs show them.
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t eos_id() const override { return EOS; }
  int32_t pad_id() const override { return EOS; }
  int32_t vocab_size() const override { return 257; }  // 256 bytes + EOS
  std::string name() const override { return "byte"; }
};

}  // namespace mira
