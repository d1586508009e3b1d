#include "base/text.h"

#include <gtest/gtest.h>

namespace togo::text {
namespace {

TEST(Text, TablesAlignColumnsAndTrimTheLastOne) {
  EXPECT_EQ(table({{"NAME", "ID"}, {"debian", "abc"}, {"x", ""}}),
            "NAME    ID\ndebian  abc\nx\n");
}

TEST(Text, JsonQuotesEscapeControlCharacters) {
  EXPECT_EQ(json_quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST(Text, JsonObjectsAndArrays) {
  EXPECT_EQ(JsonObject().add("a", "x").add("n", int64_t{3}).add_raw("l", "[]").str(),
            "{\"a\":\"x\",\"n\":3,\"l\":[]}");
  EXPECT_EQ(JsonObject().str(), "{}");
  EXPECT_EQ(json_string_array({"a", "b"}), "[\"a\",\"b\"]");
  EXPECT_EQ(json_array({}), "[]");
}

TEST(Text, HumanSizesAndAges) {
  EXPECT_EQ(human_size(512), "512 B");
  EXPECT_EQ(human_size(1536), "1.5 KiB");
  EXPECT_EQ(human_size(23 * 1024 * 1024), "23.0 MiB");
  EXPECT_EQ(ago(100, 100), "just now");
  EXPECT_EQ(ago(100, 101), "1 second ago");
  EXPECT_EQ(ago(0, 2 * 86400), "2 days ago");
}

TEST(Text, SplitKeepsEmptyFields) {
  EXPECT_EQ(split("a::b", ':'), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(split("", ':'), (std::vector<std::string>{""}));
}

}  // namespace
TEST(Text, ShellQuoteKeepsSafeWordsAndQuotesTheRest) {
  EXPECT_EQ(shell_quote("/media/stick"), "/media/stick");
  EXPECT_EQ(shell_quote("/media/my stick"), "'/media/my stick'");
  EXPECT_EQ(shell_quote("a'b;rm"), "'a'\\''b;rm'");
  EXPECT_EQ(shell_quote(""), "''");
}

TEST(Text, HexGivesTwoLowercaseDigitsPerByte) {
  EXPECT_EQ(hex(std::string_view("\x00\x0f\xa5\xff", 4)), "000fa5ff");
  EXPECT_EQ(hex(""), "");
}

}  // namespace togo::text
