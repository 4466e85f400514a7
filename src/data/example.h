// Examples: the text form a dataset reader produces (prompt, response, where it came from) and the
// tokenised form batching consumes (ids + a per-token label flag), plus the one place where
// examples are tokenised and over-long ones truncated, with per-client counts of what was cut.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace mira {

struct TextExample {
  std::string prompt;    // the full prompt (template applied)
  std::string response;  // the reference response, without EOS
  std::string source;    // "file:line" or "synthetic:task:index", for error messages
};

// One tokenised example: ids = prompt tokens, then response tokens, then EOS. labels[i] = 1 if
// token i is a target token (response or its EOS) whose prediction is trained, 0 for prompt.
struct TokenizedExample {
  std::vector<int32_t> ids;     // (n)
  std::vector<uint8_t> labels;  // (n)
  int32_t prompt_len = 0;       // leading tokens with label 0: what generation is given
  bool response_truncated = false;  // the response (and its EOS) was cut to fit max_length
};

// What happened to one client's examples on the way in (logged, shown by --dry-run).
struct ClientCounts {
  int64_t train = 0;       // train split size
  int64_t test = 0;        // test split size
  int64_t truncated = 0;   // examples whose prompt was shortened from the left
  int64_t response_truncated = 0;  // examples whose response did not fit even with a 1-token prompt
  int64_t tokens_cut = 0;  // tokens removed by truncation
  int64_t dropped = 0;     // examples skipped by a documented filter (reader-specific, see docs)
};

// Tokenises prompt, response and EOS and fits the result into max_length tokens: the prompt is
// cut from the left down to one token if needed; if the response still does not fit, it is cut
// from the right (losing EOS) and response_truncated is set. Updates counts.
TokenizedExample example_tokenize(const TextExample& ex, const Tokenizer& tok, int max_length, ClientCounts* counts);

// The same fitting rule for an already tokenised sequence (pretokenised data): cut from the left
// while keeping at least one token before the first label, then from the right.
void example_fit(TokenizedExample* ex, int max_length, ClientCounts* counts);

}  // namespace mira
