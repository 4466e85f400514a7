// GPT-2 byte-level BPE (see bpe_tokenizer.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/bpe_tokenizer.h"

#include <pcre2.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <mutex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/utf8.h"
#include "runtime/error.h"

namespace mira {
namespace {

// GPT-2's pre-tokenisation pattern, as in Hugging Face tokenizers' ByteLevel pre-tokenizer.
const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Cache of encoded pre-tokens; cleared when it reaches this many entries (a memory bound: words of
// natural text repeat, so a cache of this size hits on most of them).
constexpr size_t kCacheLimit = 1 << 18;

std::string utf8_encode(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order.
void byte_to_unicode(uint32_t table[256]) {
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = printable ? b : next++;
  }
}

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("data.tokenizer_path: cannot open " + path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(path + ": malformed JSON (" + e.what() + ")");
  }
}

bool json_is_null_or_empty(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty());
}

}  // namespace

struct BpeTokenizer::Impl {
  pcre2_code* re = nullptr;
  uint32_t unicode_to_byte[512];  // inverse of byte_to_unicode; its code points are all < 324
  std::mutex cache_mutex;
  std::unordered_map<std::string, std::vector<int32_t>> cache;
  ~Impl() {
    if (re) pcre2_code_free(re);
  }
};

BpeTokenizer::~BpeTokenizer() = default;

BpeTokenizer::BpeTokenizer(const std::string& folder) : folder_(folder), impl_(new Impl) {
  uint32_t table[256];
  byte_to_unicode(table);
  std::fill(std::begin(impl_->unicode_to_byte), std::end(impl_->unicode_to_byte), UINT32_MAX);
  for (int b = 0; b < 256; ++b) {
    byte_char_[b] = utf8_encode(table[b]);
    impl_->unicode_to_byte[table[b]] = static_cast<uint32_t>(b);
  }
  const std::string tj = folder + "/tokenizer.json";
  const std::string vj = folder + "/vocab.json", mt = folder + "/merges.txt";
  if (file_exists(tj)) {
    load_tokenizer_json(tj);
    finish(tj);
  } else if (file_exists(vj) && file_exists(mt)) {
    load_vocab_merges(vj, mt);
    finish(vj);
  } else {
    throw UserError("data.tokenizer_path = " + folder + ": neither tokenizer.json nor vocab.json + merges.txt found");
  }
  int err = 0;
  PCRE2_SIZE off = 0;
  impl_->re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                            &err, &off, nullptr);
  MIRA_CHECK(impl_->re != nullptr, "pcre2_compile error " + std::to_string(err) + " at " + std::to_string(off));
  pcre2_jit_compile(impl_->re, PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter is used if it fails
}

void BpeTokenizer::add_merge(const std::string& a, const std::string& b, const std::string& where) {
  auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(a + b);
  if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end())
    throw UserError(where + ": merge '" + a + " " + b + "' uses a token missing from the vocabulary");
  const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(ia->second)) << 32) |
                       static_cast<uint32_t>(ib->second);
  const int32_t rank = static_cast<int32_t>(merges_.size());
  merges_.emplace(key, std::make_pair(rank, im->second));  // a repeated merge keeps its first rank
}

void BpeTokenizer::load_tokenizer_json(const std::string& path) {
  const nlohmann::json j = read_json(path);
  auto refuse = [&](const std::string& what) {
    throw UserError(path + ": " + what + " is not supported (GPT-2 byte-level BPE only)");
  };
  if (!j.contains("model") || !j["model"].is_object()) refuse("a file without 'model'");
  const nlohmann::json& m = j["model"];
  if (m.value("type", std::string("BPE")) != "BPE") refuse("model.type " + m["type"].dump());
  if (!json_is_null_or_empty(m, "dropout") && m["dropout"].is_number() && m["dropout"].get<double>() != 0.0)
    refuse("model.dropout");
  if (!json_is_null_or_empty(m, "continuing_subword_prefix")) refuse("model.continuing_subword_prefix");
  if (!json_is_null_or_empty(m, "end_of_word_suffix")) refuse("model.end_of_word_suffix");
  if (m.value("byte_fallback", false)) refuse("model.byte_fallback = true");
  ignore_merges_ = m.value("ignore_merges", false);
  if (!j.value("normalizer", nlohmann::json()).is_null()) refuse("normalizer " + j["normalizer"].dump());
  const nlohmann::json pre = j.value("pre_tokenizer", nlohmann::json());
  if (pre.is_null() || pre.value("type", std::string()) != "ByteLevel")
    refuse("pre_tokenizer " + pre.dump() + " (only ByteLevel)");
  add_prefix_space_ = pre.value("add_prefix_space", true);
  use_regex_ = pre.value("use_regex", true);
  const nlohmann::json dec = j.value("decoder", nlohmann::json());
  if (!dec.is_null() && dec.value("type", std::string()) != "ByteLevel") refuse("decoder " + dec.dump());
  // post_processor (ByteLevel, TemplateProcessing as transformers 5 writes for GPT-2, ...) is not
  // read: it only adds special tokens, and encode() never does (add_special_tokens=False).

  if (!m.contains("vocab") || !m["vocab"].is_object()) refuse("a model without a vocab object");
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) vocab_[it.key()] = it.value().get<int32_t>();
  if (!m.contains("merges") || !m["merges"].is_array()) refuse("a model without a merges list");
  for (const auto& e : m["merges"]) {
    if (e.is_string()) {  // "a b" (tokenizers < 0.20 and GPT-2's own file)
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        throw UserError(path + ": merge '" + s + "' is not two tokens separated by one space");
      add_merge(s.substr(0, sp), s.substr(sp + 1), path);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {  // ["a", "b"]
      add_merge(e[0].get<std::string>(), e[1].get<std::string>(), path);
    } else {
      throw UserError(path + ": merge " + e.dump() + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
    const std::string content = a.at("content").get<std::string>();
    const int32_t id = a.at("id").get<int32_t>();
    if (a.value("lstrip", false) || a.value("rstrip", false) || a.value("single_word", false))
      refuse("added token '" + content + "' with lstrip/rstrip/single_word");
    vocab_[content] = id;
    added_.emplace_back(content, id);
  }
}

void BpeTokenizer::load_vocab_merges(const std::string& vocab_path, const std::string& merges_path) {
  const nlohmann::json v = read_json(vocab_path);
  if (!v.is_object()) throw UserError(vocab_path + ": expected a JSON object token -> id");
  for (auto it = v.begin(); it != v.end(); ++it) vocab_[it.key()] = it.value().get<int32_t>();
  std::ifstream in(merges_path, std::ios::binary);
  if (!in) throw UserError("data.tokenizer_path: cannot open " + merges_path);
  std::string line;
  long lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
      throw UserError(merges_path + ":" + std::to_string(lineno) + ": expected two tokens separated by one space");
    add_merge(line.substr(0, sp), line.substr(sp + 1), merges_path + ":" + std::to_string(lineno));
  }
  // GPT2Tokenizer's defaults: no prefix space, the regex on, <|endoftext|> special.
  add_prefix_space_ = false;
  use_regex_ = true;
  auto it = vocab_.find("<|endoftext|>");
  if (it != vocab_.end()) added_.emplace_back(it->first, it->second);
}

void BpeTokenizer::finish(const std::string& where) {
  for (const auto& kv : vocab_) vocab_size_ = std::max(vocab_size_, kv.second + 1);
  id_to_token_.assign(vocab_size_, std::string());
  id_is_added_.assign(vocab_size_, false);
  for (const auto& kv : vocab_) {
    if (kv.second < 0) throw UserError(where + ": negative id for token '" + kv.first + "'");
    id_to_token_[kv.second] = kv.first;
  }
  for (const auto& a : added_) id_is_added_[a.second] = true;
  std::stable_sort(added_.begin(), added_.end(),
                   [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(byte_char_[b]);
    if (it == vocab_.end())
      throw UserError(where + ": the vocabulary lacks the byte-level token of byte " + std::to_string(b) +
                      " (not a byte-level BPE vocabulary)");
    byte_id_[b] = it->second;
  }
  auto eos = vocab_.find("<|endoftext|>");
  if (eos == vocab_.end()) {
    const std::string cfg = folder_ + "/tokenizer_config.json";
    if (file_exists(cfg)) {
      const nlohmann::json c = read_json(cfg);
      std::string name;
      if (c.contains("eos_token") && c["eos_token"].is_string()) name = c["eos_token"].get<std::string>();
      if (c.contains("eos_token") && c["eos_token"].is_object()) name = c["eos_token"].value("content", "");
      eos = vocab_.find(name);
    }
  }
  if (eos == vocab_.end())
    throw UserError(where + ": no <|endoftext|> token and no eos_token in tokenizer_config.json");
  eos_id_ = eos->second;
}

std::vector<std::string> BpeTokenizer::pre_tokenize(const std::string& input) const {
  std::vector<std::string> pieces;
  std::string text = input;
  if (add_prefix_space_ && !text.empty() && text[0] != ' ') text.insert(text.begin(), ' ');
  if (!use_regex_) {
    if (!text.empty()) pieces.push_back(text);
    return pieces;
  }
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->re, nullptr);
  MIRA_CHECK(md != nullptr, "pcre2_match_data_create_from_pattern");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    // The text was validated as UTF-8 by encode(), so PCRE2 need not re-check it on every call.
    const int rc = pcre2_match(impl_->re, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) {
      pieces.push_back(text.substr(pos));
      break;
    }
    if (rc < 0) {
      pcre2_match_data_free(md);
      throw InternalError("pcre2_match failed with code " + std::to_string(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[0] > pos) pieces.push_back(text.substr(pos, ov[0] - pos));  // unmatched gap: its own piece
    if (ov[1] == ov[0]) {  // an empty match cannot happen with this pattern; guard against a loop
      pcre2_match_data_free(md);
      throw InternalError("empty pre-tokenizer match at byte " + std::to_string(ov[0]));
    }
    pieces.push_back(text.substr(ov[0], ov[1] - ov[0]));
    pos = ov[1];
  }
  pcre2_match_data_free(md);
  return pieces;
}

void BpeTokenizer::encode_piece(const std::string& piece, std::vector<int32_t>* out) const {
  {
    std::lock_guard<std::mutex> lock(impl_->cache_mutex);
    auto it = impl_->cache.find(piece);
    if (it != impl_->cache.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> syms;
  syms.reserve(piece.size());
  bool whole = false;
  if (ignore_merges_) {  // HF BPE: a pre-token that is itself in the vocabulary is used as is
    std::string mapped;
    for (unsigned char c : piece) mapped += byte_char_[c];
    auto it = vocab_.find(mapped);
    if (it != vocab_.end()) {
      syms.push_back(it->second);
      whole = true;
    }
  }
  if (!whole) {
    for (unsigned char c : piece) syms.push_back(byte_id_[c]);
    while (syms.size() > 1) {
      int32_t best_rank = INT32_MAX, best_id = -1;
      size_t best_i = 0;
      for (size_t i = 0; i + 1 < syms.size(); ++i) {
        const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(syms[i])) << 32) |
                             static_cast<uint32_t>(syms[i + 1]);
        auto it = merges_.find(key);
        if (it != merges_.end() && it->second.first < best_rank) {
          best_rank = it->second.first;
          best_id = it->second.second;
          best_i = i;
        }
      }
      if (best_id < 0) break;
      syms[best_i] = best_id;  // the leftmost occurrence of the lowest-ranked pair
      syms.erase(syms.begin() + static_cast<long>(best_i) + 1);
    }
  }
  out->insert(out->end(), syms.begin(), syms.end());
  std::lock_guard<std::mutex> lock(impl_->cache_mutex);
  if (impl_->cache.size() >= kCacheLimit) impl_->cache.clear();
  impl_->cache.emplace(piece, std::move(syms));
}

void BpeTokenizer::encode_text(const std::string& text, std::vector<int32_t>* out) const {
  for (const std::string& piece : pre_tokenize(text)) encode_piece(piece, out);
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text) const {
  if (!utf8_valid(text)) throw UserError("tokenizer " + name() + ": text is not valid UTF-8");
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos < text.size()) {
    // The earliest added token (longest on a tie) splits the text, as in HF tokenizers.
    size_t best = std::string::npos;
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& a : added_) {
      const size_t p = text.find(a.first, pos);
      if (p != std::string::npos && (best == std::string::npos || p < best)) {
        best = p;
        hit = &a;
      }
    }
    if (!hit) {
      encode_text(text.substr(pos), &ids);
      break;
    }
    if (best > pos) encode_text(text.substr(pos, best - pos), &ids);
    ids.push_back(hit->second);
    pos = best + hit->first.size();
  }
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_ || (id_to_token_[id].empty() && !id_is_added_[id]))
      throw InternalError("BpeTokenizer::decode: unknown id " + std::to_string(id));
    const std::string& tok = id_to_token_[id];
    if (id_is_added_[id]) {
      out += tok;
      continue;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(tok.data());
    size_t i = 0;
    while (i < tok.size()) {  // token text is UTF-8 of mapped bytes: 1 or 2 bytes per code point here
      uint32_t cp;
      size_t len;
      if (p[i] < 0x80) { cp = p[i]; len = 1; }
      else if ((p[i] & 0xE0) == 0xC0) { cp = ((p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F); len = 2; }
      else { cp = UINT32_MAX; len = 1; }
      if (cp >= 512 || impl_->unicode_to_byte[cp] == UINT32_MAX)
        throw InternalError("BpeTokenizer::decode: token " + std::to_string(id) + " is not byte-level");
      out.push_back(static_cast<char>(impl_->unicode_to_byte[cp]));
      i += len;
    }
  }
  return out;
}

}  // namespace mira
