#include "store/page_check.h"

#include <sqlite3.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

namespace togo::store {

uint64_t page_checksum(const unsigned char* page, size_t size) {
  // Each step (xor, multiply by an odd constant, rotate) is a bijection of
  // the running value, so a change confined to one word always changes the
  // result; wider damage is caught with 64-bit odds.
  uint64_t h = 0x9e3779b97f4a7c15ull ^ size;
  size_t n = size >= kPageCheckBytes ? size - kPageCheckBytes : 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, page + i, 8);
    h ^= w * 0x87c37b91114253d5ull;
    h = (h << 31 | h >> 33) * 0x4cf5ad432745937full;
  }
  for (; i < n; i++) h = (h ^ page[i]) * 0x100000001b3ull;
  return h ^ (h >> 29);
}

bool page_checksum_ok(const unsigned char* page, size_t size) {
  if (size < kPageCheckBytes) return false;
  uint64_t want = page_checksum(page, size), have;
  std::memcpy(&have, page + size - kPageCheckBytes, 8);
  return want == have;
}

void seal_page(unsigned char* page, size_t size) {
  uint64_t sum = page_checksum(page, size);
  std::memcpy(page + size - kPageCheckBytes, &sum, 8);
}

PageGeometry page_geometry(const unsigned char* h, size_t size) {
  if (size < 100 || std::memcmp(h, "SQLite format 3", 16) != 0) return {};
  uint32_t ps = static_cast<uint32_t>(h[16]) << 8 | h[17];
  if (ps == 1) ps = 65536;
  if (ps < 512 || (ps & (ps - 1))) return {};
  return {ps, h[20]};
}

namespace {

std::atomic<uint32_t> g_damaged{0};

// A file of the checking VFS: the real file follows this struct in the
// same allocation (szOsFile of the default VFS).
struct CheckedFile {
  sqlite3_file base;
  bool main_db;
  uint32_t page_size;  // from the header, once seen
  int reserved;
  sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
};

sqlite3_vfs* g_real = nullptr;
sqlite3_vfs g_vfs;
sqlite3_io_methods g_methods;

CheckedFile* cf(sqlite3_file* f) { return reinterpret_cast<CheckedFile*>(f); }

void learn_geometry(CheckedFile* f, const void* data, int amt, sqlite3_int64 off) {
  if (off != 0 || amt < 100) return;
  PageGeometry g = page_geometry(static_cast<const unsigned char*>(data), static_cast<size_t>(amt));
  if (g.page_size) {
    f->page_size = g.page_size;
    f->reserved = g.reserved;
  }
}

bool checked_page(CheckedFile* f, int amt, sqlite3_int64 off) {
  return f->main_db && f->reserved == kPageCheckBytes && f->page_size &&
         static_cast<uint32_t>(amt) == f->page_size && off % f->page_size == 0;
}

int x_close(sqlite3_file* f) {
  int rc = cf(f)->real()->pMethods ? cf(f)->real()->pMethods->xClose(cf(f)->real()) : SQLITE_OK;
  return rc;
}

int x_read(sqlite3_file* f, void* buf, int amt, sqlite3_int64 off) {
  CheckedFile* c = cf(f);
  int rc = c->real()->pMethods->xRead(c->real(), buf, amt, off);
  if (rc != SQLITE_OK || !c->main_db) return rc;
  learn_geometry(c, buf, amt, off);
  // SECURITY: a page that does not match its checksum is never handed to
  // SQLite as data.
  if (checked_page(c, amt, off) &&
      !page_checksum_ok(static_cast<const unsigned char*>(buf), static_cast<size_t>(amt))) {
    g_damaged = static_cast<uint32_t>(off / c->page_size) + 1;
    return SQLITE_IOERR_DATA;
  }
  return rc;
}

// SQLite writes dirty pages in page order, so page 1 (whose header says
// how many bytes each page reserves) is seen before the pages it governs.
int x_write(sqlite3_file* f, const void* buf, int amt, sqlite3_int64 off) {
  CheckedFile* c = cf(f);
  if (c->main_db) learn_geometry(c, buf, amt, off);
  if (!checked_page(c, amt, off)) return c->real()->pMethods->xWrite(c->real(), buf, amt, off);
  thread_local std::vector<unsigned char> page;
  page.assign(static_cast<const unsigned char*>(buf), static_cast<const unsigned char*>(buf) + amt);
  seal_page(page.data(), page.size());
  return c->real()->pMethods->xWrite(c->real(), page.data(), amt, off);
}

int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  return cf(f)->real()->pMethods->xTruncate(cf(f)->real(), size);
}
int x_sync(sqlite3_file* f, int flags) { return cf(f)->real()->pMethods->xSync(cf(f)->real(), flags); }
int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
  return cf(f)->real()->pMethods->xFileSize(cf(f)->real(), size);
}
int x_lock(sqlite3_file* f, int l) { return cf(f)->real()->pMethods->xLock(cf(f)->real(), l); }
int x_unlock(sqlite3_file* f, int l) { return cf(f)->real()->pMethods->xUnlock(cf(f)->real(), l); }
int x_check_reserved(sqlite3_file* f, int* out) {
  return cf(f)->real()->pMethods->xCheckReservedLock(cf(f)->real(), out);
}
int x_file_control(sqlite3_file* f, int op, void* arg) {
  CheckedFile* c = cf(f);
  if (op == SQLITE_FCNTL_VFSNAME && arg) {
    int rc = c->real()->pMethods->xFileControl(c->real(), op, arg);
    if (rc == SQLITE_OK)
      *static_cast<char**>(arg) =
          sqlite3_mprintf("%s/%z", kPageCheckVfs, *static_cast<char**>(arg));
    return rc;
  }
  return c->real()->pMethods->xFileControl(c->real(), op, arg);
}
int x_sector_size(sqlite3_file* f) { return cf(f)->real()->pMethods->xSectorSize(cf(f)->real()); }
int x_device_characteristics(sqlite3_file* f) {
  return cf(f)->real()->pMethods->xDeviceCharacteristics(cf(f)->real());
}
int x_shm_map(sqlite3_file* f, int pg, int pgsz, int extend, void volatile** pp) {
  return cf(f)->real()->pMethods->xShmMap(cf(f)->real(), pg, pgsz, extend, pp);
}
int x_shm_lock(sqlite3_file* f, int off, int n, int flags) {
  return cf(f)->real()->pMethods->xShmLock(cf(f)->real(), off, n, flags);
}
void x_shm_barrier(sqlite3_file* f) { cf(f)->real()->pMethods->xShmBarrier(cf(f)->real()); }
int x_shm_unmap(sqlite3_file* f, int del) {
  return cf(f)->real()->pMethods->xShmUnmap(cf(f)->real(), del);
}
// Memory-mapped reads would bypass the check: SQLite falls back to xRead.
int x_fetch(sqlite3_file*, sqlite3_int64, int, void** pp) {
  *pp = nullptr;
  return SQLITE_OK;
}
int x_unfetch(sqlite3_file*, sqlite3_int64, void*) { return SQLITE_OK; }

int x_open(sqlite3_vfs*, const char* name, sqlite3_file* f, int flags, int* out_flags) {
  CheckedFile* c = cf(f);
  std::memset(c, 0, sizeof *c);
  c->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
  int rc = g_real->xOpen(g_real, name, c->real(), flags, out_flags);
  // SQLite calls xClose only when pMethods is set.
  c->base.pMethods = c->real()->pMethods ? &g_methods : nullptr;
  return rc;
}

int x_delete(sqlite3_vfs*, const char* n, int sync) { return g_real->xDelete(g_real, n, sync); }
int x_access(sqlite3_vfs*, const char* n, int flags, int* out) {
  return g_real->xAccess(g_real, n, flags, out);
}
int x_full_pathname(sqlite3_vfs*, const char* n, int size, char* out) {
  return g_real->xFullPathname(g_real, n, size, out);
}
int x_randomness(sqlite3_vfs*, int n, char* out) { return g_real->xRandomness(g_real, n, out); }
int x_sleep(sqlite3_vfs*, int us) { return g_real->xSleep(g_real, us); }
int x_current_time(sqlite3_vfs*, double* t) { return g_real->xCurrentTime(g_real, t); }
int x_get_last_error(sqlite3_vfs*, int n, char* out) {
  return g_real->xGetLastError ? g_real->xGetLastError(g_real, n, out) : 0;
}
int x_current_time_int64(sqlite3_vfs*, sqlite3_int64* t) {
  return g_real->xCurrentTimeInt64(g_real, t);
}

}  // namespace

void register_page_check_vfs() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_real = sqlite3_vfs_find(nullptr);
    g_methods = {3,         x_close,      x_read,      x_write,        x_truncate,
                 x_sync,    x_file_size,  x_lock,      x_unlock,       x_check_reserved,
                 x_file_control, x_sector_size, x_device_characteristics, x_shm_map,
                 x_shm_lock, x_shm_barrier, x_shm_unmap, x_fetch,     x_unfetch};
    g_vfs = {};
    g_vfs.iVersion = 2;
    g_vfs.szOsFile = static_cast<int>(sizeof(CheckedFile)) + g_real->szOsFile;
    g_vfs.mxPathname = g_real->mxPathname;
    g_vfs.zName = kPageCheckVfs;
    g_vfs.xOpen = x_open;
    g_vfs.xDelete = x_delete;
    g_vfs.xAccess = x_access;
    g_vfs.xFullPathname = x_full_pathname;
    g_vfs.xRandomness = x_randomness;
    g_vfs.xSleep = x_sleep;
    g_vfs.xCurrentTime = x_current_time;
    g_vfs.xGetLastError = x_get_last_error;
    g_vfs.xCurrentTimeInt64 = x_current_time_int64;
    sqlite3_vfs_register(&g_vfs, 0);
  });
}

uint32_t last_damaged_page() { return g_damaged.load(); }

}  // namespace togo::store
