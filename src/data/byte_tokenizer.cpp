// Byte tokenizer (see byte_tokenizer.h).
#include "data/byte_tokenizer.h"

#include "runtime/error.h"

namespace mira {

std::vector<int32_t> ByteTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (int32_t id : ids) {
    if (id >= 0 && id < 256)
      out.push_back(static_cast<char>(id));
    else if (id == EOS)
      out += "<|endoftext|>";
    else
      throw InternalError("ByteTokenizer::decode: id " + std::to_string(id) + " outside [0, 257)");
  }
  return out;
}

}  // namespace mira
