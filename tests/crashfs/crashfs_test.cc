// togo-crashfs proven on writers whose crash behaviour is known, independent
// of togo: a correct atomic replace, the two classic bugs, a torn write,
// SQLite in WAL mode, the syncfs watcher, and a replay that must rebuild
// exactly the tree the recorded run left.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <optional>
#include <set>

#include "crash_recorder.h"
#include "crash_test_util.h"

namespace togo::crashfs {
namespace {

using test::read_file;
using test::write_file;

const std::string kOld = "old contents\n";
const std::string kNew = std::string(10000, 'n');

class CrashFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TOGO_REQUIRE_CRASHFS();
    store_ = dir_.sub("store");
    ASSERT_EQ(::mkdir(store_.c_str(), 0755), 0);
  }

  void start() {
    auto r = CrashRecorder::start(store_);
    ASSERT_TRUE(r) << r.error().message;
    rec_.emplace(std::move(*r));
  }

  std::optional<Recording> finish() {
    auto r = rec_->finish();
    rec_.reset();
    EXPECT_TRUE(r) << r.error().message;
    if (!r) return std::nullopt;
    return std::move(*r);
  }

  /// Materializes each distinct state of `modes` in a fresh directory and
  /// calls `check(dir, state)`; returns how many states there were.
  size_t for_each_state(const Recording& rec, std::span<const Mode> modes,
                        const std::function<void(const std::string&, const CrashState&)>& check,
                        size_t max_cuts = 0) {
    size_t n = 0;
    for (const CrashState& s : rec.states(modes, {}, max_cuts)) {
      std::string dest = dir_.sub("state");
      auto m = rec.materialize(s, dest);
      EXPECT_TRUE(m) << s.describe(rec.log()) << ": " << m.error().message;
      if (m) check(dest, s);
      EXPECT_TRUE(fs::remove_tree(AT_FDCWD, dest));
      n++;
      if (::testing::Test::HasFatalFailure()) break;
    }
    return n;
  }

  std::string path(const std::string& rel) const { return store_ + "/" + rel; }

  /// Records `file` (holding kOld) replaced by kNew through file.tmp and a
  /// rename, with an fsync of the new file and one of the directory after
  /// the rename if asked. finish() ends the recording.
  void record_replace(bool sync_file, bool sync_dir) {
    ASSERT_TRUE(write_file(path("file"), kOld));
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_TRUE(write_file(path("file.tmp"), kNew, sync_file));
    ASSERT_EQ(::rename(path("file.tmp").c_str(), path("file").c_str()), 0);
    if (sync_dir) {
      ASSERT_TRUE(test::sync_dir(store_));
    }
  }

  test::ScratchDir dir_;
  std::string store_;
  std::optional<CrashRecorder> rec_;
};

// The right way: the new file is durable before its name is, and the name
// is durable before we say so. No crash may show anything but old or new.
TEST_F(CrashFsTest, AtomicReplaceLeavesOldOrNewAtEveryCut) {
  ASSERT_NO_FATAL_FAILURE(record_replace(/*sync_file=*/true, /*sync_dir=*/true));
  auto rec = finish();
  ASSERT_TRUE(rec);
  size_t saw_old = 0, saw_new = 0, at_end = 0;
  size_t n = for_each_state(*rec, kAllModes, [&](const std::string& dir, const CrashState& s) {
    auto got = read_file(dir + "/file");
    ASSERT_TRUE(got) << s.describe(rec->log());
    EXPECT_TRUE(*got == kOld || *got == kNew)
        << s.describe(rec->log()) << ": " << got->size() << " bytes";
    (*got == kOld ? saw_old : saw_new)++;
    // After the directory's fsync nothing is lost, whatever the mode: the
    // state there is one (kept under the first mode that makes it).
    if (s.cut == rec->log().ops.size()) {
      at_end++;
      EXPECT_EQ(*got, kNew) << s.describe(rec->log());
    }
  });
  EXPECT_GT(saw_old, 0u);
  EXPECT_GT(saw_new, 0u);
  EXPECT_EQ(at_end, 1u) << "no state at the last cut: the new file's durability went unchecked";
  EXPECT_GE(n, 5u);
}

// Bug 1: the file is never fsynced, only the directory. The tool must find a
// crash that leaves the new name with the data missing.
TEST_F(CrashFsTest, RenameWithoutFileFsyncIsCaught) {
  ASSERT_NO_FATAL_FAILURE(record_replace(/*sync_file=*/false, /*sync_dir=*/true));
  auto rec = finish();
  ASSERT_TRUE(rec);
  const Mode drop[] = {Mode::kDropUnsynced};
  size_t broken = 0;
  for_each_state(*rec, drop, [&](const std::string& dir, const CrashState&) {
    auto got = read_file(dir + "/file");
    if (got && *got != kOld && *got != kNew) broken++;
  });
  EXPECT_GT(broken, 0u) << "no crash state showed the empty new file";
}

// Bug 2: no fsync at all. Dropping what is unsynced only ever shows the old
// file; the reordered states (names persisted before data, as ext4 with
// delayed allocation can) must show the broken one.
TEST_F(CrashFsTest, NoFsyncAtAllIsCaughtByReorder) {
  ASSERT_NO_FATAL_FAILURE(record_replace(/*sync_file=*/false, /*sync_dir=*/false));
  auto rec = finish();
  ASSERT_TRUE(rec);
  size_t broken = 0;
  for_each_state(*rec, kCrashModes, [&](const std::string& dir, const CrashState& s) {
    auto got = read_file(dir + "/file");
    if (s.mode == Mode::kDropUnsynced) {
      EXPECT_EQ(got, std::optional<std::string>(kOld));
    }
    if (got && *got != kOld && *got != kNew) broken++;
  });
  EXPECT_GT(broken, 0u);
}

TEST_F(CrashFsTest, TornWriteLeavesAPrefix) {
  ASSERT_TRUE(write_file(path("f"), std::string(8192, 'a'), true));
  start();
  int fd = ::open(path("f").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, std::string(4096, 'b').data(), 4096, 0), 4096);
  ::close(fd);
  auto rec = finish();
  ASSERT_TRUE(rec);
  std::set<size_t> prefixes;
  const Mode torn[] = {Mode::kTornLastWrite};
  for_each_state(*rec, torn, [&](const std::string& dir, const CrashState& s) {
    auto got = read_file(dir + "/f");
    ASSERT_TRUE(got);
    ASSERT_EQ(got->size(), 8192u);
    size_t k = got->find('a');
    EXPECT_EQ(*got, std::string(k, 'b') + std::string(8192 - k, 'a')) << s.describe(rec->log());
    prefixes.insert(k);
  });
  EXPECT_EQ(prefixes, std::set<size_t>({512, 2048}));
}

sqlite3* open_db(const std::string& file) {
  sqlite3* db = nullptr;
  if (sqlite3_open(file.c_str(), &db) != SQLITE_OK) {
    ADD_FAILURE() << "sqlite3_open " << file << ": " << sqlite3_errmsg(db);
    sqlite3_close(db);
    return nullptr;
  }
  return db;
}

void exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << sql << ": " << err;
}

std::string query(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  std::string out = "error: ";
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
    return out + sqlite3_errmsg(db);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  else
    out += sqlite3_errmsg(db);
  sqlite3_finalize(st);
  return out;
}

// SQLite with journal_mode=WAL and synchronous=FULL, written through the
// mount (its -shm is mmapped, its locks are fcntl locks): every crash state
// opens, passes integrity_check and holds every transaction that committed
// before the cut.
TEST_F(CrashFsTest, SqliteWalSurvivesEveryCrash) {
  constexpr int kCommits = 12;
  {
    sqlite3* db = open_db(path("db"));
    ASSERT_TRUE(db);
    exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(i INTEGER PRIMARY KEY, v TEXT);");
    sqlite3_close(db);
  }
  start();
  {
    sqlite3* db = open_db(path("db"));
    ASSERT_TRUE(db);
    exec(db, "PRAGMA synchronous=FULL;");
    for (int i = 0; i < kCommits; i++) {
      exec(db, "INSERT INTO t VALUES(" + std::to_string(i) + ", printf('%.*c', 3000, 'x'));");
      ASSERT_TRUE(rec_->mark("commit " + std::to_string(i)));
      if (i == kCommits / 2) exec(db, "PRAGMA wal_checkpoint(TRUNCATE);");
    }
    sqlite3_close(db);
  }
  auto rec = finish();
  ASSERT_TRUE(rec);
  const Log& log = rec->log();
  ASSERT_EQ(log.marks.size(), static_cast<size_t>(kCommits));
  size_t partial = 0;
  size_t n = for_each_state(*rec, kAllModes, [&](const std::string& dir, const CrashState& s) {
    int committed = 0;
    for (const auto& m : log.marks) committed += m.at <= s.cut;
    sqlite3* db = open_db(dir + "/db");
    ASSERT_TRUE(db);
    exec(db, "PRAGMA synchronous=OFF;");  // checking needs no durability: no fsyncs
    EXPECT_EQ(query(db, "PRAGMA integrity_check;"), "ok") << s.describe(log);
    std::string rows = query(db, "SELECT count(*) || ' ' || coalesce(max(i), -1) FROM t;");
    int count = -1, max = -2;
    std::sscanf(rows.c_str(), "%d %d", &count, &max);
    EXPECT_GE(count, committed) << s.describe(log) << ": " << rows;
    EXPECT_EQ(max, count - 1) << "transactions appear in order: " << rows;
    partial += count < kCommits;
    sqlite3_close(db);
  });
  EXPECT_GT(partial, 0u);
  std::printf("sqlite: %zu operations, %zu crash states checked\n", log.ops.size(), n);
}

// syncfs(2) and sync(2) never reach a FUSE server; `togo-crashfs watch`
// records them. A syncfs by a descendant that outlives the command counts too.
TEST_F(CrashFsTest, WatchRecordsSyncfsAndSync) {
  start();
  std::string script = "printf new > " + path("tmp") + " && mv " + path("tmp") + " " +
                       path("file") + " && sync -f " + path("file");
  EXPECT_EQ(test::run_status(rec_->watched({"sh", "-c", script})), 0);
  EXPECT_EQ(test::run_status(rec_->watched({"sync", "-f", "/"})), 0) << "not on the mount";
  EXPECT_EQ(test::run_status(rec_->watched({"sh", "-c", "exit 7"})), 7);
  EXPECT_EQ(test::run_status(rec_->watched({"sync"})), 0);
  // As another user, without no_new_privs (setuid helpers still work).
  std::string as_user =
      "test \"$(id -u):$(id -g)\" = 4321:4321 && grep -q '^NoNewPrivs:.0' "
      "/proc/self/status && sync -f " +
      store_;
  EXPECT_EQ(test::run_status(rec_->watched({"sh", "-c", as_user}, 4321)), 0);
  std::string later = "(sleep 0.3; sync -f " + store_ + ") >/dev/null 2>&1 &";
  EXPECT_EQ(test::run_status(rec_->watched({"sh", "-c", later})), 0);
  ::usleep(1'000'000);
  auto rec = finish();
  ASSERT_TRUE(rec);
  std::vector<OpKind> barriers;
  for (const Op& op : rec->log().ops)
    if (op.kind == OpKind::kSyncfs || op.kind == OpKind::kSync) barriers.push_back(op.kind);
  ASSERT_EQ(barriers, std::vector<OpKind>(
                          {OpKind::kSyncfs, OpKind::kSync, OpKind::kSyncfs, OpKind::kSyncfs}));
  // The first syncfs made the renamed file durable without any fsync.
  size_t after = 0;
  while (rec->log().ops[after].kind != OpKind::kSyncfs) after++;
  auto m =
      materialize(rec->snapshot_dir(), rec->log(), after + 1, Mode::kDropUnsynced, dir_.sub("s"));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(read_file(dir_.sub("s/file")), std::optional<std::string>("new"));
}

}  // namespace
}  // namespace togo::crashfs
