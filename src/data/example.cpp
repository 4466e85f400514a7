// Tokenisation and truncation of examples (see example.h).
#include "data/example.h"

#include <algorithm>

#include "runtime/error.h"

namespace mira {

void example_fit(TokenizedExample* ex, int max_length, ClientCounts* counts) {
  MIRA_CHECK(ex->ids.size() == ex->labels.size(), "ids and labels differ in length");
  MIRA_CHECK(max_length >= 2, "max_length " + std::to_string(max_length));
  const int64_t n = static_cast<int64_t>(ex->ids.size());
  int64_t first_label = 0;
  while (first_label < n && !ex->labels[first_label]) ++first_label;
  ex->prompt_len = static_cast<int32_t>(first_label);
  if (n <= max_length) return;
  // Left cut: at most first_label - 1 tokens so that the first response token is still predicted
  // from one prompt token.
  const int64_t left = std::min<int64_t>(n - max_length, std::max<int64_t>(first_label - 1, 0));
  if (left > 0) {
    ex->ids.erase(ex->ids.begin(), ex->ids.begin() + left);
    ex->labels.erase(ex->labels.begin(), ex->labels.begin() + left);
    ex->prompt_len -= static_cast<int32_t>(left);
    if (counts) {
      counts->truncated += 1;
      counts->tokens_cut += left;
    }
  }
  const int64_t rest = static_cast<int64_t>(ex->ids.size()) - max_length;
  if (rest > 0) {
    ex->ids.resize(max_length);
    ex->labels.resize(max_length);
    ex->response_truncated = true;
    if (counts) {
      counts->response_truncated += 1;
      counts->tokens_cut += rest;
    }
  }
}

TokenizedExample example_tokenize(const TextExample& text, const Tokenizer& tok, int max_length,
                                  ClientCounts* counts) {
  TokenizedExample ex;
  ex.ids = tok.encode(text.prompt);
  const size_t np = ex.ids.size();
  std::vector<int32_t> resp = tok.encode(text.response);
  ex.ids.insert(ex.ids.end(), resp.begin(), resp.end());
  ex.ids.push_back(tok.eos_id());  // MIRA.md: the target is the response followed by EOS
  ex.labels.assign(ex.ids.size(), 1);
  std::fill(ex.labels.begin(), ex.labels.begin() + np, 0);
  example_fit(&ex, max_length, counts);
  return ex;
}

}  // namespace mira
