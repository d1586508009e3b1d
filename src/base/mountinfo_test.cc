#include "base/mountinfo.h"

#include <gtest/gtest.h>

namespace togo {
namespace {

const char* kText =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "30 22 8:17 / /media/my\\040stick rw,nosuid - vfat /dev/sdb1 rw,uid=1000\n"
    "31 22 0:5 / /media/my rw - tmpfs tmpfs rw\n"
    "garbage line\n";

TEST(Mountinfo, ParsesFieldsAndUndoesEscapes) {
  auto m = parse_mountinfo(kText);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[1].mount_point, "/media/my stick");
  EXPECT_EQ(m[1].fstype, "vfat");
  EXPECT_EQ(m[1].source, "/dev/sdb1");
  EXPECT_EQ(m[1].options, (std::vector<std::string>{"rw", "nosuid"}));
  EXPECT_EQ(m[1].super_options, (std::vector<std::string>{"rw", "uid=1000"}));
}

TEST(Mountinfo, TheLongestMountPointThatHoldsThePathWins) {
  auto m = parse_mountinfo(kText);
  EXPECT_EQ(mount_holding(m, "/media/my stick/store")->source, "/dev/sdb1");
  EXPECT_EQ(mount_holding(m, "/media/my")->source, "tmpfs");
  EXPECT_EQ(mount_holding(m, "/media/mystery")->source, "/dev/sda1") << "a prefix is not a parent";
  EXPECT_EQ(mount_holding({}, "/x"), nullptr);
}

}  // namespace
}  // namespace togo
