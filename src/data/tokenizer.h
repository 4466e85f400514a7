// Tokenizer: the interface every tokenizer implements (byte-level for the tiny demo models, GPT-2
// byte-level BPE from a Hugging Face folder), and the factory that picks one from DataOptions.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/options.h"

namespace mira {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Text -> ids. No special token is added; special-token strings in the text are matched as
  // special tokens only by tokenizers that have added tokens (BPE), as Hugging Face does.
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  // Ids -> text; decode(encode(x)) == x for every valid UTF-8 x.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int32_t eos_id() const = 0;   // appended to every target
  virtual int32_t pad_id() const = 0;   // right padding (== eos_id for GPT-2 and the byte tokenizer)
  virtual int32_t vocab_size() const = 0;
  virtual std::string name() const = 0;  // "byte" or "hf:<folder>", for logs and provenance
};

// Byte tokenizer or BPE from options.tokenizer_path; UserError if the folder is unusable.
std::unique_ptr<Tokenizer> tokenizer_create(const DataOptions& options);

}  // namespace mira
