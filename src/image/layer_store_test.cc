// Staging and placing layers in a real store in a temporary directory: the
// limits against hostile layers, that placed files go again when the
// import does not complete, and packed layers unpacked from their blobs.
#include "image/layer_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "base/fs.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "store/layout.h"

namespace togo::image {
namespace {

// A plain tar of empty regular files with these names.
std::string tar_of(const std::vector<std::string>& names) {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open(
      a, &out, nullptr,
      [](struct archive*, void* self, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(self)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  for (auto& name : names) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 0);
    EXPECT_EQ(archive_write_header(a, e), ARCHIVE_OK);
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

class LayerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/togo-layers-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto st = store::Store::open(dir_ + "/store", store::Store::Access::kWrite);
    ASSERT_TRUE(st) << st.error().message;
    store_.emplace(std::move(*st));
    auto stage = store_->make_staging_dir();
    ASSERT_TRUE(stage) << stage.error().message;
    stage_ = *stage;
  }
  void TearDown() override {
    store_.reset();
    (void)fs::remove_tree(AT_FDCWD, dir_);
  }

  Result<StagedLayer> stage(int n, const std::string& tar, const LayerLimits& limits = {}) {
    std::string name = "in-" + std::to_string(n) + ".tar";
    Fd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    auto written = fs::write_file_atomic(dir.get(), name, tar);
    EXPECT_TRUE(written) << written.error().message;
    Fd in(::openat(dir.get(), name.c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(in.valid());
    return stage_layer(*store_, stage_, n, in.get(), {.what = "layer " + std::to_string(n)}, {},
                       limits);
  }

  bool exists(const std::string& rel) {
    struct stat st;
    return ::fstatat(store_->fd(), rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  }

  std::string dir_;
  std::optional<store::Store> store_;
  std::string stage_;
};

TEST_F(LayerStoreTest, MoreEntriesThanTheLimitIsBadInput) {
  std::string tar = tar_of({"a", "b", "c", "d"});
  LayerLimits limits;
  limits.max_entries = 3;
  auto r = stage(0, tar, limits);
  ASSERT_FALSE(r.has_value()) << "a layer of 4 entries passed a limit of 3";
  EXPECT_EQ(r.error().kind, ErrorKind::kBadInput);
  EXPECT_EQ(r.error().message, "layer 0: the archive has more than 3 entries");
  limits.max_entries = 4;
  auto ok = stage(1, tar, limits);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_FALSE(ok->known);
  EXPECT_EQ(ok->record.diff_id, Sha256::digest_of(tar));
  EXPECT_EQ(ok->record.digest, ok->record.diff_id) << "an uncompressed blob is its own tar";
  EXPECT_TRUE(LayerLimits{}.max_entries > 4) << "the default allows ordinary layers";
}

TEST_F(LayerStoreTest, PlacedLayersAreInPlaceAndDiscardTakesThemBack) {
  auto a = stage(0, tar_of({"etc/a"}));
  auto b = stage(1, tar_of({"etc/b"}));
  ASSERT_TRUE(a && b);
  std::vector<StagedLayer> layers = {*a, *b};
  auto placed = place_layers(*store_, stage_, layers);
  ASSERT_TRUE(placed) << placed.error().message;
  for (auto& l : layers) {
    EXPECT_TRUE(exists(store::layer_root(l.record.digest) + "/etc")) << l.record.digest;
    EXPECT_TRUE(exists(store::blob_path(l.record.digest))) << l.record.digest;
  }
  discard_placed(*store_, layers);
  for (auto& l : layers) {
    EXPECT_FALSE(exists(store::layer_dir(l.record.digest))) << l.record.digest;
    EXPECT_FALSE(exists(store::blob_path(l.record.digest))) << l.record.digest;
  }
}

TEST_F(LayerStoreTest, KnownLayersAreNeitherMovedNorDiscarded) {
  std::string tar = tar_of({"etc/k"});
  auto first = stage(0, tar);
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(place_layers(*store_, stage_, {*first}));
  ASSERT_TRUE(store_->catalog().put_layer(first->record));
  auto again = stage(1, tar);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(again->known);
  std::vector<StagedLayer> layers = {*first, *again};
  layers[0].known = true;
  ASSERT_TRUE(place_layers(*store_, stage_, layers));
  EXPECT_TRUE(exists(stage_ + "/1.root")) << "a known layer's staged copy stays where it is";
  discard_placed(*store_, layers);
  EXPECT_TRUE(exists(store::layer_root(first->record.digest)))
      << "a layer the catalog names was removed";
  EXPECT_TRUE(exists(store::blob_path(first->record.digest)));
}

// A packed layer's blob in the store, and its row (not yet in the catalog).
store::LayerRecord packed_blob(store::Store& st, const std::string& blob, const std::string& diff_id) {
  store::LayerRecord rec{Sha256::digest_of(blob), blob.size(), 0, diff_id, "", "", false};
  EXPECT_TRUE(sys::ensure_dir_at(st.fd(), store::kBlobs, 0755));
  Fd dir(::openat(st.fd(), store::kBlobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  EXPECT_TRUE(fs::write_file_atomic(dir.get(), std::string(store::digest_hex(rec.digest)), blob, 0444));
  return rec;
}

TEST_F(LayerStoreTest, APackedLayerIsUnpackedFromItsBlobWhichStays) {
  std::string tar = tar_of({"etc/p"});
  store::LayerRecord rec = packed_blob(*store_, tar, Sha256::digest_of(tar));
  auto staged = stage_stored_layer(*store_, stage_, 0, rec, "layer 1/1", {});
  ASSERT_TRUE(staged) << staged.error().message;
  EXPECT_TRUE(staged->record.unpacked);
  EXPECT_TRUE(staged->blob_placed);
  EXPECT_FALSE(staged->known);
  EXPECT_FALSE(staged->record.tree.empty());
  std::vector<StagedLayer> layers = {*staged};
  ASSERT_TRUE(place_layers(*store_, stage_, layers));
  EXPECT_TRUE(exists(store::layer_root(rec.digest) + "/etc/p"));
  EXPECT_TRUE(exists(store::layer_files(rec.digest)));
  discard_placed(*store_, layers);
  EXPECT_FALSE(exists(store::layer_dir(rec.digest)));
  EXPECT_TRUE(exists(store::blob_path(rec.digest))) << "the blob of a packed layer went with its tree";
}

TEST_F(LayerStoreTest, APackedLayerThatIsNotWhatItsRowSaysIsRefused) {
  std::string tar = tar_of({"etc/q"});
  store::LayerRecord rec = packed_blob(*store_, tar, Sha256::digest_of("another tar"));
  auto wrong = stage_stored_layer(*store_, stage_, 0, rec, "image x: layer 1/1", {});
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind, ErrorKind::kBadInput);
  EXPECT_EQ(wrong.error().message, "image x: layer 1/1: uncompressed content hashes to " +
                                       Sha256::digest_of(tar) + ", the image config says " + rec.diff_id);
  // A blob that rotted in the store.
  store::LayerRecord rotten = packed_blob(*store_, tar_of({"etc/r"}), "");
  rotten.blob_size += 1;
  auto damaged = stage_stored_layer(*store_, stage_, 1, rotten, "layer 1/1", {});
  ASSERT_FALSE(damaged);
  EXPECT_EQ(damaged.error().kind, ErrorKind::kFailed);
  EXPECT_NE(damaged.error().message.find("layer 1/1: the stored blob is damaged"), std::string::npos)
      << damaged.error().message;
}

TEST_F(LayerStoreTest, StagingALayerStoredPackedUnpacksItOverItsBlob) {
  std::string tar = tar_of({"etc/s"});
  store::LayerRecord rec = packed_blob(*store_, tar, Sha256::digest_of(tar));
  ASSERT_TRUE(store_->catalog().put_layer(rec));
  auto staged = stage(0, tar);
  ASSERT_TRUE(staged) << staged.error().message;
  EXPECT_FALSE(staged->known) << "a packed layer counts as known: nothing would unpack it";
  EXPECT_TRUE(staged->blob_placed);
  std::vector<StagedLayer> layers = {*staged};
  ASSERT_TRUE(place_layers(*store_, stage_, layers));
  discard_placed(*store_, layers);
  EXPECT_TRUE(exists(store::blob_path(rec.digest))) << "the catalog still names that blob";
}

TEST(SniffMediaType, TellsCompressionsByTheirFirstBytes) {
  EXPECT_EQ(sniff_media_type("\x1f\x8b\x08\0"), "application/vnd.oci.image.layer.v1.tar+gzip");
  EXPECT_EQ(sniff_media_type("\x28\xb5\x2f\xfd\0"), "application/vnd.oci.image.layer.v1.tar+zstd");
  EXPECT_EQ(sniff_media_type(std::string_view("\xfd" "7zXZ\0", 6)), "");
  EXPECT_EQ(sniff_media_type("BZh91AY"), "");
  EXPECT_EQ(sniff_media_type("etc/\0\0\0"), "application/vnd.oci.image.layer.v1.tar");
  EXPECT_EQ(sniff_media_type(""), "application/vnd.oci.image.layer.v1.tar");
}

}  // namespace
}  // namespace togo::image
