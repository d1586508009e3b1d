// Page checksums for the catalog. SQLite keeps no checksum of its own pages,
// so a flipped bit in the catalog could go unseen (in free space) or be read
// as data. The catalog is opened through a thin VFS that reserves the last 8
// bytes of every page for a checksum of the rest: written on every page
// write, checked on every page read, and checkable offline by `togo fsck`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace togo::store {

/// The name of the checking VFS; register_page_check_vfs() makes it exist.
inline constexpr const char* kPageCheckVfs = "togo-pagecheck";
/// Bytes reserved at the end of each page for the checksum.
inline constexpr int kPageCheckBytes = 8;

/// Registers the checking VFS over SQLite's default one (idempotent).
void register_page_check_vfs();

/// The checksum of a page's first size-8 bytes.
uint64_t page_checksum(const unsigned char* page, size_t size);
/// True if the page's last 8 bytes hold the checksum of the rest.
bool page_checksum_ok(const unsigned char* page, size_t size);
/// Writes the checksum into the page's last 8 bytes.
void seal_page(unsigned char* page, size_t size);

/// Page size and reserved bytes from a database header (its first 100
/// bytes); {0, 0} if `header` is not an SQLite header.
struct PageGeometry {
  uint32_t page_size = 0;
  int reserved = 0;
};
PageGeometry page_geometry(const unsigned char* header, size_t size);

/// The last page found damaged by a read through the VFS in this process
/// (1-based; 0 if none), so an error can say where.
uint32_t last_damaged_page();

}  // namespace togo::store
