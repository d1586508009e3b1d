#include "store/page_check.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace togo::store {
namespace {

TEST(PageCheck, EveryFlippedBitOfAPageIsSeen) {
  std::vector<unsigned char> page(1024);
  for (size_t i = 0; i < page.size(); i++) page[i] = static_cast<unsigned char>(i * 7);
  seal_page(page.data(), page.size());
  ASSERT_TRUE(page_checksum_ok(page.data(), page.size()));
  for (size_t byte = 0; byte < page.size(); byte++)
    for (int bit = 0; bit < 8; bit++) {
      page[byte] ^= static_cast<unsigned char>(1 << bit);
      EXPECT_FALSE(page_checksum_ok(page.data(), page.size())) << byte << ":" << bit;
      page[byte] ^= static_cast<unsigned char>(1 << bit);
    }
}

TEST(PageCheck, GeometryComesFromTheHeader) {
  unsigned char h[100] = {};
  std::memcpy(h, "SQLite format 3", 16);
  h[16] = 0x10, h[17] = 0x00, h[20] = 8;
  EXPECT_EQ(page_geometry(h, sizeof h).page_size, 4096u);
  EXPECT_EQ(page_geometry(h, sizeof h).reserved, 8);
  h[16] = 0, h[17] = 1;
  EXPECT_EQ(page_geometry(h, sizeof h).page_size, 65536u);
  h[0] = 'X';
  EXPECT_EQ(page_geometry(h, sizeof h).page_size, 0u) << "not a database";
  h[0] = 'S', h[16] = 0x03, h[17] = 0x00;
  EXPECT_EQ(page_geometry(h, sizeof h).page_size, 0u) << "not a power of two";
}

}  // namespace
}  // namespace togo::store
