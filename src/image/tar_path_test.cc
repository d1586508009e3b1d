#include "image/tar_path.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace togo::image {
namespace {

using namespace std::string_literals;

TEST(CleanEntryPath, NormalizesNames) {
  std::vector<std::pair<std::string, std::string>> cases = {
      {"usr/bin/ls", "usr/bin/ls"},
      {"./usr/bin/ls", "usr/bin/ls"},
      {"././usr/bin/", "usr/bin"},
      {".//./usr", "usr"},
      {"usr//bin///ls", "usr/bin/ls"},
      {"usr/./bin/./ls/.", "usr/bin/ls"},
      {"etc/", "etc"},
      {"a", "a"},
      {"...", "..."},
      {"..a/b..", "..a/b.."},
      {".hidden/.x", ".hidden/.x"},
      {"with space/\xc3\xa9t\xc3\xa9", "with space/\xc3\xa9t\xc3\xa9"},
  };
  for (const auto& [raw, want] : cases) {
    auto got = clean_entry_path(raw);
    ASSERT_TRUE(got.has_value()) << raw << ": " << got.error().message;
    EXPECT_EQ(*got, want) << raw;
  }
}

TEST(CleanEntryPath, RootBecomesDot) {
  for (std::string raw : {".", "./", "././", ".//", "./."}) {
    auto got = clean_entry_path(raw);
    ASSERT_TRUE(got.has_value()) << raw;
    EXPECT_EQ(*got, ".") << raw;
  }
}

void expect_refused(std::string_view raw, const std::string& why) {
  auto got = clean_entry_path(raw);
  ASSERT_FALSE(got.has_value()) << "accepted " << raw << " as " << *got;
  EXPECT_EQ(got.error().kind, ErrorKind::kBadInput) << raw;
  EXPECT_EQ(got.error().message, why) << raw;
}

TEST(CleanEntryPath, RefusesAbsolutePaths) {
  expect_refused("/etc/passwd", "absolute path");
  expect_refused("/", "absolute path");
  expect_refused("//etc", "absolute path");
}

TEST(CleanEntryPath, RefusesDotDot) {
  for (std::string raw : {"..", "../x", "./../x", "a/../../x", "a/..", "a/../b", "a/b/../../..",
                          "x/../", "../"})
    expect_refused(raw, "path leaves the image root");
}

TEST(CleanEntryPath, RefusesEmptyAndNul) {
  expect_refused("", "empty name");
  expect_refused("a\0b"s, "name contains a NUL byte");
  expect_refused("\0"s, "name contains a NUL byte");
}

TEST(SplitEntryPath, CutsAtLastSlash) {
  auto p = split_entry_path("a/b/c");
  EXPECT_EQ(p.parent, "a/b");
  EXPECT_EQ(p.base, "c");
  p = split_entry_path("c");
  EXPECT_EQ(p.parent, ".");
  EXPECT_EQ(p.base, "c");
  p = split_entry_path("a/b");
  EXPECT_EQ(p.parent, "a");
  EXPECT_EQ(p.base, "b");
}

TEST(PrintableName, EscapesControlBytes) {
  EXPECT_EQ(printable_name("usr/bin/x"), "usr/bin/x");
  EXPECT_EQ(printable_name("a\nb"), "a\\x0ab");
  EXPECT_EQ(printable_name("\x1b[31mred"), "\\x1b[31mred");
  EXPECT_EQ(printable_name("back\\slash"), "back\\\\slash");
  EXPECT_EQ(printable_name("del\x7f"), "del\\x7f");
  EXPECT_EQ(printable_name("\xc3\xa9"), "\xc3\xa9");  // UTF-8 is kept as is
}

}  // namespace
}  // namespace togo::image
