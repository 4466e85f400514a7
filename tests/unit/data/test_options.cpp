// DataOptions: defaults validate; each bad value is refused with the dotted key in the message.
#include <gtest/gtest.h>

#include "data/options.h"
#include "runtime/error.h"

namespace mira {
namespace {
std::string error_of(const DataOptions& o) {
  try {
    o.validate();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(DataOptions, DefaultsAreValidAndErrorsNameTheKey) {
  DataOptions o;
  EXPECT_EQ(error_of(o), "");
  DataOptions a = o;
  a.max_length = 1;
  EXPECT_NE(error_of(a).find("data.max_length"), std::string::npos);
  DataOptions b = o;
  b.train_fraction = 1.0;
  EXPECT_NE(error_of(b).find("data.train_fraction"), std::string::npos);
  DataOptions c = o;
  c.source = DataSource::DOLLY;
  EXPECT_NE(error_of(c).find("data.path"), std::string::npos);
  DataOptions d = o;
  d.tokenizer = TokenizerKind::HF;
  EXPECT_NE(error_of(d).find("data.tokenizer_path"), std::string::npos);
  DataOptions e = o;
  e.source = DataSource::NI;
  e.path = "x";
  EXPECT_NE(error_of(e).find("data.task_list"), std::string::npos);
  DataOptions f = o;
  f.clients_per_category = 0;
  EXPECT_NE(error_of(f).find("data.clients_per_category"), std::string::npos);
  EXPECT_EQ(data_parse_source("dolly"), DataSource::DOLLY);
  EXPECT_THROW(data_parse_source("imagenet"), UserError);
  EXPECT_THROW(data_parse_tokenizer("sentencepiece"), UserError);
  EXPECT_EQ(data_parse_template("raw"), PromptTemplate::RAW);
}

}  // namespace mira
