// Byte tokenizer: exact round trip of any UTF-8 text, ids = bytes, EOS = 256.
#include <gtest/gtest.h>

#include "data/byte_tokenizer.h"
#include "data/utf8.h"
#include "runtime/error.h"

namespace mira {

TEST(ByteTokenizer, IdsAreBytesAndRoundTrip) {
  ByteTokenizer tok;
  const std::string text = "h\xC3\xA9llo  w\xF0\x9F\x98\x80rld\n\t12'll";  // é, emoji, whitespace run
  const auto ids = tok.encode(text);
  ASSERT_EQ(ids.size(), text.size());
  EXPECT_EQ(ids[0], 'h');
  EXPECT_EQ(ids[1], 0xC3);
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.vocab_size(), 257);
  EXPECT_EQ(tok.eos_id(), 256);
  EXPECT_EQ(tok.pad_id(), tok.eos_id());
  EXPECT_EQ(tok.decode({'a', 256}), "a<|endoftext|>");
  EXPECT_THROW(tok.decode({257}), InternalError);
}

TEST(Utf8, ValidatesAndCounts) {
  EXPECT_TRUE(utf8_valid("abc \xC3\xA9 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(utf8_valid("\xC3"));              // truncated
  EXPECT_FALSE(utf8_valid("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(utf8_valid("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(utf8_valid("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(utf8_valid("\xFF"));
  EXPECT_EQ(utf8_length("a\xC3\xA9\xF0\x9F\x98\x80"), 3u);
}

}  // namespace mira
