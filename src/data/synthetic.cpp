// Synthetic instruction suite and pretraining corpus (see synthetic.h).
#include "data/synthetic.h"

#include <utility>

#include "runtime/error.h"
#include "runtime/rng.h"

namespace mira {
namespace {

// The five family codes: images of a..h, drawn once with Python's random.Random(5).sample and
// frozen here (part of the reproducibility contract: never change, only append families).
const char* kFamilyCodes[SYNTH_NUM_FAMILIES] = {"efchabdg", "cahdbegf", "afbdchge", "bhefdacg", "abgfedch"};
const char* kFamilies[SYNTH_NUM_FAMILIES] = {"code_a", "code_b", "code_c", "code_d", "code_e"};

}  // namespace

SynthTask synth_task(int task) {
  MIRA_CHECK(task >= 0 && task < SYNTH_NUM_TASKS, "task " + std::to_string(task));
  SynthTask t;
  t.family = task / SYNTH_TASKS_PER_FAMILY;
  const int member = task % SYNTH_TASKS_PER_FAMILY;
  t.name = std::string(kFamilies[t.family]) + ".v" + std::to_string(member);
  t.instruction = "Encode the word.";
  t.code = kFamilyCodes[t.family];
  std::swap(t.code[2 * member], t.code[2 * member + 1]);  // the member's twist
  return t;
}

const char* synth_family_name(int family) {
  MIRA_CHECK(family >= 0 && family < SYNTH_NUM_FAMILIES, "family " + std::to_string(family));
  return kFamilies[family];
}

int synth_client_task(int client) { return client % SYNTH_NUM_TASKS; }

std::string synth_answer(int task, const std::string& input) {
  const SynthTask t = synth_task(task);
  std::string out = input;
  for (char& c : out) {
    MIRA_CHECK(c >= 'a' && c < 'a' + SYNTH_ALPHABET_SIZE, "letter '" + std::string(1, c) + "' outside a..h");
    c = t.code[c - 'a'];
  }
  return out;
}

TextExample synth_example(uint64_t seed, int client, int index) {
  const int task = synth_client_task(client);
  const SynthTask t = synth_task(task);
  Rng rng(seed, RngPurpose::DATA_SYNTH, static_cast<uint64_t>(client), static_cast<uint64_t>(index));
  std::string word;
  for (int i = 0; i < SYNTH_WORD_LENGTH; ++i) word.push_back(static_cast<char>('a' + rng.below(SYNTH_ALPHABET_SIZE)));
  TextExample ex;
  ex.prompt = "### Instruction:\n" + t.instruction + "\n\n### Input:\n" + word + "\n\n### Response:\n";
  ex.response = synth_answer(task, word);
  ex.source = "synthetic:" + t.name + ":client" + std::to_string(client) + ":" + std::to_string(index);
  return ex;
}

std::vector<std::string> synth_pretrain_corpus(uint64_t seed, int count) {
  static const char* subj[] = {"the old man", "a small dog", "my sister", "the teacher", "our neighbour",
                               "a tired farmer", "the children", "the captain", "a young girl", "the baker",
                               "his friend", "the river", "a cold wind", "the king", "her mother"};
  static const char* verb[] = {"walked to", "looked at", "talked about", "waited near", "ran past",
                               "thought of", "sang about", "painted", "found", "carried", "visited", "watched"};
  static const char* obj[] = {"the market", "a green field", "the old bridge", "the quiet house", "the garden",
                              "a long road", "the harbour", "the mountain", "a busy street", "the school",
                              "the forest", "a warm kitchen", "the village", "the sea"};
  static const char* tail[] = {"in the morning", "after dinner", "before the rain", "on a sunny day",
                               "at night", "with a smile", "without a word", "every summer", "last week",
                               "in the spring"};
  static const char* link[] = {"Then", "Later", "Soon", "After that", "Meanwhile", "Once again"};
  std::vector<std::string> docs;
  docs.reserve(count);
  for (int i = 0; i < count; ++i) {
    // Stream a = 2^32 keeps the corpus apart from every client's synthetic stream (a = client).
    Rng rng(seed, RngPurpose::DATA_SYNTH, uint64_t{1} << 32, static_cast<uint64_t>(i));
    const int sentences = 1 + static_cast<int>(rng.below(2));
    std::string doc;
    for (int s = 0; s < sentences; ++s) {
      std::string sent;
      if (s > 0) sent = std::string(link[rng.below(6)]) + " ";
      std::string su = subj[rng.below(15)];
      if (s == 0) su[0] = static_cast<char>(su[0] - 'a' + 'A');
      sent += su + " " + verb[rng.below(12)] + " " + obj[rng.below(14)];
      if (rng.below(2)) sent += std::string(" ") + tail[rng.below(10)];
      sent += rng.below(5) == 0 ? "!" : ".";
      doc += (s > 0 ? " " : "") + sent;
    }
    docs.push_back(doc);
  }
  return docs;
}

std::vector<TokenizedExample> synth_pretrain_examples(uint64_t seed, int count, const Tokenizer& tok,
                                                      int max_length, ClientCounts* counts) {
  std::vector<TokenizedExample> out;
  for (const std::string& doc : synth_pretrain_corpus(seed, count)) {
    TokenizedExample ex;
    ex.ids.push_back(tok.eos_id());  // document separator, as in GPT-2's training data
    ex.labels.push_back(0);
    for (int32_t id : tok.encode(doc)) {
      ex.ids.push_back(id);
      ex.labels.push_back(1);
    }
    ex.ids.push_back(tok.eos_id());
    ex.labels.push_back(1);
    example_fit(&ex, max_length, counts);
    out.push_back(std::move(ex));
  }
  if (counts) counts->train = static_cast<int64_t>(out.size());
  return out;
}

}  // namespace mira
