// The storage bench, run small on the test's temp dir, and its judgement.
#include "doctor/storage_bench.h"

#include "doctor/doctor_test_util.h"
#include "doctor/probes.h"

namespace togo::doctor {
namespace {

using testing::Fixture;
using testing::has;

TEST(DoctorStorageBench, ShortRunMeasuresAndLeavesNothing) {
  Fixture fx;
  BenchBudget b;
  b.max_bytes = 16u << 20;
  b.write_s = b.read_s = b.random_s = b.fsync_s = 0.1;
  auto m = run_storage_bench(fx.root(), b);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_GT(m->write_mbs, 0);
  EXPECT_GT(m->read_mbs, 0);
  EXPECT_GT(m->random_iops, 0);
  EXPECT_GT(m->fsync_ms, 0);
  EXPECT_GE(m->fsync_p90_ms, m->fsync_ms);
  EXPECT_GT(m->bytes, 0u);
  EXPECT_LE(m->bytes, 16u << 20);
  EXPECT_LT(m->seconds, 5);
  EXPECT_TRUE(fx.view().list(fx.root()).empty()) << "the bench's directory is removed";
}

TEST(DoctorStorageBench, MissingDirectoryIsAnError) {
  auto m = run_storage_bench("/nonexistent/togo-bench");
  ASSERT_FALSE(m);
  EXPECT_TRUE(has(m.error().message, "/nonexistent/togo-bench")) << m.error().message;
}

TEST(DoctorStorageBench, FastDriveIsOk) {
  BenchFigures m{900, 2000, 20000, 0.8, 1.5, 256u << 20, 5.1};
  Finding f = judge_bench(m);
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found,
            "sequential write 900 MB/s, read 2000 MB/s; 4 KiB random writes 20000/s; "
            "fsync 0.8 ms (median; 90% under 1.5 ms); 256 MiB in 5.1 s");
}

TEST(DoctorStorageBench, UsbTwoStickIsDegradedOnEveryCount) {
  BenchFigures m{25, 35, 120, 40, 90, 64u << 20, 7.9};
  Finding f = judge_bench(m);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.why, "writes at 25 MB/s (pleasant: 80+)")) << f.why;
  EXPECT_TRUE(has(f.why, "reads at 35 MB/s")) << f.why;
  EXPECT_TRUE(has(f.why, "120 small random writes/s")) << f.why;
  EXPECT_TRUE(has(f.why, "fsync taking 40.0 ms")) << f.why;
}

TEST(DoctorStorageBench, OnlyTheSlowPartIsNamed) {
  BenchFigures m{400, 500, 5000, 25, 30, 256u << 20, 5};
  Finding f = judge_bench(m);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_FALSE(has(f.why, "MB/s")) << f.why;
  EXPECT_TRUE(has(f.why, "fsync")) << f.why;
}

TEST(DoctorStorageBench, ProbeWithoutAWritableDirectory) {
  Fixture fx;
  fx.file("plainfile", "", 0644);
  HostView v = fx.view();
  v.store = fx.path("plainfile/store");
  Finding f = probe_storage_bench(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(f.found.starts_with("not run")) << f.found;
}

}  // namespace
}  // namespace togo::doctor
