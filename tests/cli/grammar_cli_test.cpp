// `bitnet run -j / -jf`: a JSON schema constrains the output of the shipped default model (which
// knows no JSON) to JSON valid under the schema, for every seed; property order as declared.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "process_runner.h"
#include "test_data.h"

namespace bitnet {
namespace {

const char* kSchema = R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},
  "age":{"type":"integer","minimum":0,"maximum":150},"tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":3}},
  "required":["name","age"]})";

TEST(GrammarCli, JsonSchemaOutputIsValidForEverySeed) {
  const std::string bin = testing::bin_dir() + "/bitnet";
  const std::string file = (testing::temp_dir() / "schema.json").string();
  std::ofstream(file) << kSchema;
  for (int seed = 1; seed <= 8; ++seed) {
    std::vector<std::string> args = {bin, "run", "-p", "Answer:", "-n", "400", "--temp", "1", "-s", std::to_string(seed),
                                     "--no-display-prompt"};
    if (seed % 2) args.insert(args.end(), {"-j", kSchema});
    else args.insert(args.end(), {"-jf", file});
    const testing::ProcessResult r = testing::run_process(args, "", "");
    ASSERT_EQ(r.code, 0) << r.err;
    nlohmann::ordered_json j;
    ASSERT_NO_THROW(j = nlohmann::ordered_json::parse(r.out)) << "seed " << seed << ": " << r.out;
    ASSERT_TRUE(j.is_object()) << r.out;
    ASSERT_TRUE(j["name"].is_string()) << r.out;
    EXPECT_LE(j["name"].get<std::string>().size(), 12u) << r.out;
    ASSERT_TRUE(j["age"].is_number_integer()) << r.out;
    EXPECT_GE(j["age"].get<int>(), 0);
    EXPECT_LE(j["age"].get<int>(), 150);
    EXPECT_EQ(j.begin().key(), "name") << "declaration order: " << r.out;
    if (j.contains("tags")) {
      for (const auto& t : j["tags"]) EXPECT_TRUE(t == "a" || t == "b") << r.out;
    }
    EXPECT_NE(r.err.find("grammar: "), std::string::npos) << "mask count and time in the timings";
  }
}

TEST(GrammarCli, BadSchemasAndGrammarsAreUsageErrors) {
  const std::string bin = testing::bin_dir() + "/bitnet";
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{{{"-j", "{not json"}, "not valid JSON"},
                                         {{"-j", R"J({"type":"string","pattern":"(?=x)"})J"}, "JSON schema"},
                                         {{"-j", R"({"not":{}})"}, "not"},
                                         {{"--grammar", "root ::= undefined"}, "undefined"},
                                         {{"--grammar", "root ::= \"a\"", "-j", "{}"}, "give one of"}}) {
    std::vector<std::string> args = {bin, "run", "-p", "x", "-n", "4"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const testing::ProcessResult r = testing::run_process(args, "", "");
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace bitnet
