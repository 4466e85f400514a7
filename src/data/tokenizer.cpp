// tokenizer_create: the tokenizer data.tokenizer names.
#include "data/tokenizer.h"

#include "data/bpe_tokenizer.h"
#include "data/byte_tokenizer.h"

namespace mira {

std::unique_ptr<Tokenizer> tokenizer_create(const DataOptions& options) {
  if (options.tokenizer == TokenizerKind::BYTE) return std::make_unique<ByteTokenizer>();
  return std::make_unique<BpeTokenizer>(options.tokenizer_path);
}

}  // namespace mira
