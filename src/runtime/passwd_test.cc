#include "runtime/passwd.h"

#include <gtest/gtest.h>

#include <cstring>

namespace togo::runtime {
namespace {

bool find(const char* text, unsigned uid, PasswdEntry* e) {
  return find_passwd_uid(text, std::strlen(text), uid, e);
}

TEST(Passwd, FindsHomeAndShellByUid) {
  PasswdEntry e;
  const char* text =
      "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
      "root:x:0:0:root:/root:/bin/bash\n"
      "me:x:1000:1000:Me,,,:/home/me:/usr/bin/zsh";
  ASSERT_TRUE(find(text, 0, &e));
  EXPECT_STREQ(e.home, "/root");
  EXPECT_STREQ(e.shell, "/bin/bash");
  ASSERT_TRUE(find(text, 1000, &e));  // last line without newline
  EXPECT_STREQ(e.name, "me");
  EXPECT_STREQ(e.shell, "/usr/bin/zsh");
}

TEST(Passwd, DefaultsWhenMissingOrMalformed) {
  PasswdEntry e;
  EXPECT_FALSE(find("", 0, &e));
  EXPECT_STREQ(e.home, "/root");
  EXPECT_STREQ(e.shell, "/bin/sh");
  EXPECT_FALSE(find("root:x:zero:0::/root:/bin/bash\n", 0, &e));
  EXPECT_FALSE(find("root:x:0\n", 0, &e));
  // "01000" is not uid 1000 (the user database refuses leading zeros too).
  EXPECT_FALSE(find("me:x:01000:1000::/home/me:/bin/sh\n", 1000, &e));
  // Relative home or shell fields are not trusted.
  ASSERT_TRUE(find("root:x:0:0::root:bash\n", 0, &e));
  EXPECT_STREQ(e.home, "/root");
  EXPECT_STREQ(e.shell, "/bin/sh");
}

TEST(Passwd, LongFieldsAreTruncatedNotOverflowed) {
  std::string line = "root:x:0:0::/" + std::string(1000, 'h') + ":/bin/sh\n";
  PasswdEntry e;
  ASSERT_TRUE(find(line.c_str(), 0, &e));
  EXPECT_EQ(std::strlen(e.home), sizeof e.home - 1);
}

}  // namespace
}  // namespace togo::runtime
