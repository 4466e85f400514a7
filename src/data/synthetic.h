// The embedded default dataset: a synthetic multi-task instruction suite generated from the seed
// (no download), and a disjoint generic text corpus for `pretrain`.
//
// Every task is a character substitution ("Encode the word."): the input is a 4-letter word over
// a..h and the response is the word with each letter replaced through the task's code. 20 tasks in
// 5 families of 4: each family has its own code (a fixed permutation of a..h), and member j of a
// family swaps the images of letters 2j and 2j+1, so members agree on 6 of 8 letters (and pairwise
// on 4 of 8) while different families' codes are unrelated. The instruction is the same for every
// task: which code a client wants is not in the prompt, as when clients ask the same thing and
// want different answers. So pooling a family's data helps each member (more examples of mostly
// the same mapping), pooling across families hurts (conflicting answers to identical prompts: one
// global adapter cannot fit them), and each client alone has little data: the case MIRA's
// task-aware graph is for. Fixed-length, position-aligned tasks keep them learnable by a tiny
// 2-layer model in seconds. Client k owns task k mod 20 (a task repeats with fresh examples when
// there are more than 20 clients).
// Prompt: the Alpaca section headers without the preamble, to keep examples at 71 bytes:
// "### Instruction:\nEncode the word.\n\n### Input:\n{word}\n\n### Response:\n", target "{code}" + EOS.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/example.h"

namespace mira {

constexpr int SYNTH_NUM_FAMILIES = 5;
constexpr int SYNTH_TASKS_PER_FAMILY = 4;
constexpr int SYNTH_NUM_TASKS = SYNTH_NUM_FAMILIES * SYNTH_TASKS_PER_FAMILY;
constexpr int SYNTH_WORD_LENGTH = 4;    // letters per input word
constexpr int SYNTH_ALPHABET_SIZE = 8;  // letters a..h

struct SynthTask {
  std::string name;         // e.g. "code_c.v2": family code c, member 2
  std::string instruction;  // "Encode the word." for every task
  int family = 0;           // 0..SYNTH_NUM_FAMILIES-1
  std::string code;         // image of a..h (8 letters)
};

SynthTask synth_task(int task);
const char* synth_family_name(int family);
// Task of client k.
int synth_client_task(int client);

// Example `index` of client `client`, its word drawn from Rng(seed, DATA_SYNTH, client, index).
TextExample synth_example(uint64_t seed, int client, int index);
// The response of `task` to an input word (exposed for tests).
std::string synth_answer(int task, const std::string& input);

// The generic pretraining corpus: `count` short English-like documents from a small grammar,
// drawn from Rng(seed, DATA_SYNTH, 1 << 32, i). Contains no instruction template and no code.
std::vector<std::string> synth_pretrain_corpus(uint64_t seed, int count);

// Pretraining examples: EOS (a document separator, as in GPT-2's data; label 0), then the document
// and EOS (label 1); fitted to max_length.
std::vector<TokenizedExample> synth_pretrain_examples(uint64_t seed, int count, const Tokenizer& tok,
                                                      int max_length, ClientCounts* counts);

}  // namespace mira
