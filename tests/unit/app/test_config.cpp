// Configuration: INI parsing with line numbers, strict scalar parsing, precedence (command line >
// file > default), cross-key validation, and the resolved-config dump reading back identically.
#include <gtest/gtest.h>

#include "app/config_load.h"
#include "app/config_schema.h"
#include "app/ini.h"
#include "runtime/error.h"

using namespace mira;

namespace {
// Runs config_parse on args with an in-memory "file system" of one file.
CliOutcome parse(std::vector<std::string> args, const std::string& ini_text = "") {
  return config_parse(args, [&](const std::string& path) {
    if (path != "x.ini") throw UserError("cannot read config file '" + path + "'");
    return ini_text;
  });
}
std::string error_of(std::vector<std::string> args, const std::string& ini_text = "") {
  try {
    parse(args, ini_text);
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST(Ini, ParsesSectionsCommentsQuotesAndLines) {
  auto e = ini_parse("# top\n[run]\nrounds = 3  # inline\n\n; c\n[lora]\ntargets = \"c_attn,c_proj\"\npath = a#b\n", "f.ini");
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].full(), "run.rounds");
  EXPECT_EQ(e[0].value, "3");
  EXPECT_EQ(e[0].line, 3);
  EXPECT_EQ(e[1].value, "c_attn,c_proj");
  EXPECT_EQ(e[1].section_line, 6);
  EXPECT_EQ(e[2].value, "a#b");  // '#' inside a word is not a comment
}

TEST(Ini, RejectsMalformedInput) {
  EXPECT_THROW(ini_parse("[run]\nrounds\n", "f.ini"), UserError);
  EXPECT_THROW(ini_parse("rounds = 1\n", "f.ini"), UserError);
  EXPECT_THROW(ini_parse("[run\n", "f.ini"), UserError);
  EXPECT_THROW(ini_parse("[]\n", "f.ini"), UserError);
  try {
    ini_parse("[a]\nx = 1\n[b]\n[a]\nx = 2\n", "f.ini");
    FAIL();
  } catch (const UserError& err) {
    EXPECT_STREQ(err.what(), "f.ini:5: duplicate key 'a.x' (first set at line 2)");
  }
}

TEST(Scalars, IntegersAreStrict) {
  EXPECT_EQ(config_parse_int("42", 1, 100), 42);
  EXPECT_EQ(config_parse_int("-1", -1, 5), -1);
  for (const char* bad : {"", "4x", "4.0", " 4", "0x10", "99999999999999999999"})
    EXPECT_THROW(config_parse_int(bad, 0, 1000), ConfigValueError) << bad;
  EXPECT_THROW(config_parse_int("0", 1, 10), ConfigValueError);
}

TEST(Scalars, DoublesAreFiniteAndInRange) {
  EXPECT_DOUBLE_EQ(config_parse_double("3e-4", 0, 1), 3e-4);
  for (const char* bad : {"", "nan", "inf", "1e999", "0.1.2", "2"})
    EXPECT_THROW(config_parse_double(bad, 0, 1), ConfigValueError) << bad;
  EXPECT_TRUE(config_parse_bool("yes"));
  EXPECT_FALSE(config_parse_bool("off"));
  EXPECT_THROW(config_parse_bool("maybe"), ConfigValueError);
}

TEST(Config, DefaultsAreTheAuthorsValues) {
  const Config& c = parse({}).config;
  EXPECT_EQ(c.command, Command::TRAIN);
  EXPECT_EQ(c.lora.rank, 16);
  EXPECT_DOUBLE_EQ(c.lora.alpha, 8);
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-4);
  EXPECT_DOUBLE_EQ(c.optim.grad_clip, 5.0);
  EXPECT_EQ(c.train.local_epochs, 5);
  EXPECT_EQ(c.federation.graph_seed, 42u);
  EXPECT_EQ((std::vector<std::string>{"c_attn", "c_proj"}), c.lora.targets);
  EXPECT_EQ(c.origin.at("lora.rank"), "default");
}

TEST(Config, CommandLineWinsOverFileWinsOverDefault) {
  auto out = parse({"train", "--config", "x.ini", "--lora.rank", "8"}, "[lora]\nrank = 4\nalpha = 2\n[run]\nrounds=7\n");
  const Config& c = out.config;
  EXPECT_EQ(c.lora.rank, 8);
  EXPECT_EQ(c.origin.at("lora.rank"), "command line");
  EXPECT_DOUBLE_EQ(c.lora.alpha, 2);
  EXPECT_EQ(c.origin.at("lora.alpha"), "x.ini:3");
  EXPECT_EQ(c.run.rounds, 7);
  EXPECT_EQ(c.lora.dropout, 0.05);
  EXPECT_EQ(c.origin.at("lora.dropout"), "default");
}

TEST(Config, EqualsFormAndSubcommands) {
  EXPECT_EQ(parse({"--lora.rank=12"}).config.lora.rank, 12);
  EXPECT_EQ(parse({"pretrain"}).config.command, Command::PRETRAIN);
  EXPECT_EQ(parse({"inspect", "x.h5"}).config.tool.checkpoint, "x.h5");
  EXPECT_EQ(parse({"export", "--checkpoint", "c.h5", "--client", "3", "--out", "d"}).config.tool.client, 3);
  EXPECT_NE(error_of({"inspect"}).find("inspect needs a checkpoint"), std::string::npos);
  EXPECT_NE(error_of({"export", "--checkpoint", "c.h5"}).find("export needs --checkpoint FILE --client K"),
            std::string::npos);
  EXPECT_NE(error_of({"train", "extra"}).find("unexpected argument 'extra'"), std::string::npos);
  EXPECT_NE(error_of({"train", "--client", "1"}).find("belong to the inspect and export"), std::string::npos);
  EXPECT_TRUE(parse({"--help"}).help);
  EXPECT_TRUE(parse({"--dry-run"}).config.dry_run);
}

TEST(Config, GraphSpecs) {
  EXPECT_EQ(parse({"--federation.graph", "knn:3"}).config.federation.graph.knn_k, 3);
  auto g = parse({"--federation.graph", "file:/tmp/w.csv"}).config.federation.graph;
  EXPECT_EQ(g.kind, GraphKind::FILE);
  EXPECT_EQ(g.path, "/tmp/w.csv");
  EXPECT_NE(error_of({"--federation.graph", "knn:x"}).find("expected random | task"), std::string::npos);
  EXPECT_NE(error_of({"--federation.graph", "file:"}).find("expected random"), std::string::npos);
}

TEST(Config, MessagesNameOriginKeyAndAllowedValues) {
  EXPECT_EQ(error_of({"--config", "x.ini"}, "[lora]\n\nrank = 0\n"),
            "x.ini:3: lora.rank = '0': expected an integer in [1, 4096]");
  EXPECT_EQ(error_of({"--config", "x.ini"}, "[lora]\nrnak = 1\n"),
            "x.ini:2: unknown key 'rnak' in section [lora] (did you mean lora.rank?) (allowed: rank, alpha, dropout, targets)");
  EXPECT_EQ(error_of({"--config", "y.ini"}), "cannot read config file 'y.ini'");
  EXPECT_EQ(error_of({"--run.rounds", "-3"}), "command line: run.rounds = '-3': expected an integer in [1, 1000000]");
  EXPECT_EQ(error_of({"--log-level", "debug", "--run.log_level", "info"}),
            "command line: --log-level and --run.log_level are the same key; give one");
  EXPECT_NE(error_of({"--lora.targets", "c_attn,,c_proj"}).find("without empty entries"), std::string::npos);
  EXPECT_NE(error_of({"--lora.targets", "q_proj"}).find("expected a comma list"), std::string::npos);
}

TEST(Config, ResolvedDumpReadsBackToTheSameConfig) {
  Config a = parse({"--lora.rank", "8", "--model.path", "/m", "--optim.lr", "1.5e-3", "--federation.graph", "knn:2", "--run.seed",
                    "18446744073709551615"})
                 .config;
  std::string ini = config_to_ini(a, false);
  Config b = parse({"--config", "x.ini"}, ini).config;
  EXPECT_EQ(config_to_ini(b, false), ini);
  EXPECT_EQ(b.run.seed, 18446744073709551615ull);
  EXPECT_DOUBLE_EQ(b.optim.lr, 1.5e-3);
}

// ---- Edge cases that used to be read wrongly: `key =   # comment` (the comment became the value), a
// UTF-8 BOM at the start of the file and `[section]  # comment` (both refused with a reason one could
// not see), `--config DIRECTORY` (ran with every default), and mira.eta in (-1, 0) (silently taken as
// the -1 "derived" sentinel).

TEST(IniEdges, ValueThatIsOnlyACommentIsEmpty) {
  const auto e = ini_parse("[data]\njsonl.input_field =   # none\nx = #\ny = \"# kept\"\nz = a # b\n", "f.ini");
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0].value, "");  // was "# none"
  EXPECT_EQ(e[1].value, "");
  EXPECT_EQ(e[2].value, "# kept");  // quotes keep a leading #
  EXPECT_EQ(e[3].value, "a");
  // Through the key table: the empty value is what `input_field = ""` gives, and model.path empty
  // is the preset.
  const Config c =
      parse({"--config", "x.ini"}, "[data]\nsource = jsonl\npath = d.jsonl\njsonl.input_field =   # none\n"
                                   "[model]\npath = # use the preset\n")
          .config;
  EXPECT_EQ(c.data.input_field, "");
  EXPECT_EQ(c.model.path, "");
}

TEST(IniEdges, ByteOrderMarkAtTheStartIsSkipped) {
  const auto e = ini_parse("\xEF\xBB\xBF[run]\nrounds = 3\n", "bom.ini");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].full(), "run.rounds");
  EXPECT_EQ(e[0].line, 2);
  EXPECT_EQ(parse({"--config", "x.ini"}, "\xEF\xBB\xBF# Windows\r\n[run]\r\nrounds = 4\r\n").config.run.rounds, 4);
  // Only at the start: elsewhere it stays part of the text (here of a key, which is then unknown).
  EXPECT_NE(error_of({"--config", "x.ini"}, "[run]\n\xEF\xBB\xBFrounds = 3\n").find("x.ini:2: unknown key"),
            std::string::npos);
}

TEST(IniEdges, SectionHeaderTakesAnInlineComment) {
  const auto e = ini_parse("[run]   # the run\n[lora]\t# adapters\nrank = 4\n", "f.ini");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].full(), "lora.rank");
  EXPECT_EQ(e[0].section_line, 2);
  for (const char* bad : {"[run] x\n", "[run]# no blank before\n", "[run] ] # c\n", "[] # c\n", "[run # c\n"})
    EXPECT_THROW(ini_parse(bad, "f.ini"), UserError) << bad;
}

TEST(ConfigEdges, ConfigThatIsADirectoryIsRefused) {
  const std::string dir = ::testing::TempDir();
  try {
    config_read_file(dir);
    FAIL() << "a directory was read as an empty config";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), "cannot read config file '" + dir + "': it is a directory (expected an INI file)");
  }
  EXPECT_THROW(config_read_file("/nonexistent/x.ini"), UserError);
}

TEST(ConfigEdges, EtaIsMinusOneOrNonNegative) {
  EXPECT_EQ(parse({}).config.mira.eta, -1);  // default: derived
  for (const char* ok : {"-1", "-1.0", "-1e0", "0", "-0", "0.015", "3"})
    EXPECT_NO_THROW(parse({"--mira.eta", ok})) << ok;
  EXPECT_EQ(parse({"--mira.eta", "-1.0"}).config.mira.eta, -1);
  EXPECT_EQ(parse({"--mira.eta", "0.015"}).config.mira.eta, 0.015);
  for (const char* bad : {"-0.5", "-0.999", "-1e-9", "-1.5", "-2", "abc", "nan"})
    EXPECT_EQ(error_of({"--mira.eta", bad}),
              std::string("command line: mira.eta = '") + bad + "': expected -1 (derived: lr * R) or a number >= 0")
        << bad;
  EXPECT_EQ(error_of({"--config", "x.ini"}, "[mira]\neta = -0.5\n"),
            "x.ini:2: mira.eta = '-0.5': expected -1 (derived: lr * R) or a number >= 0");
  bool listed = false;
  for (const ConfigKey& k : config_keys())
    if (k.full() == "mira.eta") listed = k.allowed == "-1 (derived: lr * R) or a number >= 0";
  EXPECT_TRUE(listed);  // --help and docs/configuration.md say so
}
