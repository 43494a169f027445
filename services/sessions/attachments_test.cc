#include "services/sessions/attachments.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/blob/file_blob_store.h"
#include "libs/blob/s3_blob_store.h"
#include "libs/clock/clock.h"
#include "libs/filetype/test_files.h"
#include "libs/protoutil/time.h"
#include "libs/scan/clamd_client.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/clamd/clamd.h"
#include "libs/testing/clamd/fake_scanner.h"
#include "libs/testing/fake_s3/fake_s3.h"
#include "prometheus/registry.h"
#include "services/sessions/fake_attachment_backend.h"
#include "services/sessions/metrics.h"

namespace switchboard::sessions {
namespace {

namespace files = filetype::testing;
using auth::Role;
using Code = absl::StatusCode;

const Caller kCustomer{"cust-1", Role::kCustomer};
const Caller kAgent{"agent-1", Role::kAgent};
const Caller kOtherCustomer{"cust-2", Role::kCustomer};
const Caller kSupervisor{"sup-1", Role::kSupervisor};

v1::UploadHeader Header(const std::string& upload_id, const std::string& bytes,
                        const std::string& content_type, const std::string& session_id = "s-1") {
  v1::UploadHeader h;
  h.set_session_id(session_id);
  h.set_upload_id(upload_id);
  h.set_file_name("screenshot.png");
  h.set_content_type(content_type);
  h.set_size_bytes(static_cast<int64_t>(bytes.size()));
  h.set_sha256(blob::ContentAddress(bytes));
  return h;
}

class AttachmentsTest : public ::testing::Test {
 protected:
  AttachmentsTest()
      : blobs_(*blob::FileBlobStore::Open(storage::MakeTempDir() + "/blobs")),
        classifier_(*filetype::FileTypeClassifier::Create()) {
    backend_.AddSession("s-1", kCustomer.id, kAgent.id);
    backend_.AddSession("s-2", kOtherCustomer.id);
  }

  // Built on first use, so a test may change options_ and blob_store_ first.
  Attachments& attachments() {
    if (attachments_ == nullptr) {
      attachments_ = std::make_unique<Attachments>(&backend_, blob_store_, classifier_.get(),
                                                   &scanner_, &clock_, &metrics_, options_);
    }
    return *attachments_;
  }

  // The whole upload, as the service runs it.
  absl::StatusOr<Attachments::Uploaded> Upload(const Caller& caller,
                                               const v1::UploadHeader& header,
                                               const std::string& bytes) {
    absl::StatusOr<Attachments::Began> began = attachments().BeginUpload(caller, header);
    if (!began.ok()) return began.status();
    if (began->replayed.has_value()) return Attachments::Uploaded{*began->replayed, true};
    return attachments().FinishUpload(caller, header, bytes);
  }

  // A PNG stored for `caller` and scanned clean.
  v1::Attachment CleanPng(const Caller& caller = kCustomer, const std::string& session = "s-1") {
    absl::StatusOr<Attachments::Uploaded> up =
        Upload(caller, Header("clean-png", files::Png(), "image/png", session), files::Png());
    EXPECT_TRUE(up.ok()) << up.status();
    EXPECT_EQ(*attachments().ScanPending(), 1);
    return backend_.record(up->attachment.attachment_id())->attachment;
  }

  std::vector<std::string> BlobKeys() { return *blobs_->List("", 100); }

  FakeClock clock_;
  FakeAttachmentBackend backend_;
  testing::FakeScanner scanner_;
  std::unique_ptr<blob::FileBlobStore> blobs_;
  blob::BlobStore* blob_store_ = blobs_.get();
  std::unique_ptr<filetype::FileTypeClassifier> classifier_;
  prometheus::Registry registry_;
  SessionsMetrics metrics_{registry_};
  AttachmentsOptions options_;
  std::unique_ptr<Attachments> attachments_;
};

TEST_F(AttachmentsTest, APngIsStoredWithoutItsGpsPositionAndPendingScan) {
  const std::string png = files::Png(/*metadata=*/true);
  ASSERT_TRUE(absl::StrContains(png, files::GpsLatitude()));
  v1::UploadHeader header = Header("u-1", png, "image/png");
  header.set_sha256(absl::AsciiStrToUpper(header.sha256()));
  absl::StatusOr<Attachments::Uploaded> up = Upload(kCustomer, header, png);
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_FALSE(up->replayed);
  const v1::Attachment& a = up->attachment;
  EXPECT_TRUE(absl::StartsWith(a.attachment_id(), "att-"));
  EXPECT_EQ(a.state(), v1::ATTACHMENT_STATE_PENDING_SCAN);
  EXPECT_EQ(a.content_type(), "image/png");
  EXPECT_EQ(a.file_name(), "screenshot.png");
  EXPECT_EQ(a.session_id(), "s-1");
  EXPECT_EQ(a.uploader_id(), kCustomer.id);
  EXPECT_EQ(a.uploader_role(), common::v1::SENDER_ROLE_CUSTOMER);
  EXPECT_EQ(protoutil::FromTimestamp(a.uploaded_at()), clock_.Now());
  EXPECT_EQ(a.metadata_kept_reason(), "");
  EXPECT_LT(a.size_bytes(), static_cast<int64_t>(png.size()));

  // What is stored is the stripped file, under its own hash.
  const std::string stored = *blobs_->Get(a.sha256());
  EXPECT_EQ(a.sha256(), blob::ContentAddress(stored));
  EXPECT_EQ(a.size_bytes(), static_cast<int64_t>(stored.size()));
  EXPECT_FALSE(absl::StrContains(stored, files::GpsLatitude()));
  EXPECT_FALSE(absl::StrContains(stored, files::kXmpGps));
  EXPECT_EQ(BlobKeys(), std::vector<std::string>{a.sha256()});

  std::optional<AttachmentRecord> record = backend_.record(a.attachment_id());
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->upload_id, "u-1");
  EXPECT_EQ(record->blob_key, a.sha256());
  EXPECT_EQ(record->updated_at, clock_.Now());
  EXPECT_EQ(metrics_.upload_stored->Value(), 1);
  EXPECT_EQ(metrics_.uploaded_bytes->Value(), static_cast<double>(stored.size()));
}

TEST_F(AttachmentsTest, AnAgentsUploadIsTheAgents) {
  absl::StatusOr<Attachments::Uploaded> up =
      Upload(kAgent, Header("u-1", files::Pdf(), "application/pdf"), files::Pdf());
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->attachment.uploader_role(), common::v1::SENDER_ROLE_AGENT);
  EXPECT_EQ(up->attachment.content_type(), "application/pdf");
}

TEST_F(AttachmentsTest, TypesWhoseMetadataStaysSayWhy) {
  absl::StatusOr<Attachments::Uploaded> up =
      Upload(kCustomer, Header("u-1", files::Mp4(), "video/mp4"), files::Mp4());
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_NE(up->attachment.metadata_kept_reason(), "");
  EXPECT_EQ(up->attachment.sha256(), blob::ContentAddress(files::Mp4()));
}

TEST_F(AttachmentsTest, AnExecutableDeclaredAsPngIsRefusedNamingBothTypes) {
  const std::string elf = files::Elf();
  absl::StatusOr<Attachments::Uploaded> up =
      Upload(kCustomer, Header("u-1", elf, "image/png"), elf);
  ASSERT_EQ(up.status().code(), Code::kInvalidArgument) << up.status();
  EXPECT_TRUE(absl::StartsWith(up.status().message(), "file: ")) << up.status();
  EXPECT_TRUE(absl::StrContains(up.status().message(), "image/png")) << up.status();
  EXPECT_TRUE(absl::StrContains(up.status().message(), "ELF")) << up.status();
  EXPECT_TRUE(BlobKeys().empty());
  EXPECT_TRUE(backend_.records().empty());
  EXPECT_EQ(metrics_.upload_invalid->Value(), 1);
}

TEST_F(AttachmentsTest, BytesNotAsDeclaredAreRefusedWithBothValues) {
  const std::string png = files::Png();
  v1::UploadHeader header = Header("u-1", png, "image/png");
  header.set_size_bytes(header.size_bytes() + 1);
  absl::Status status = attachments().FinishUpload(kCustomer, header, png).status();
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), absl::StrCat(png.size(), " bytes received")))
      << status;
  EXPECT_TRUE(absl::StrContains(status.message(), absl::StrCat(png.size() + 1))) << status;

  header = Header("u-1", png, "image/png");
  header.set_sha256(std::string(64, 'a'));
  status = attachments().FinishUpload(kCustomer, header, png).status();
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), blob::ContentAddress(png))) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), std::string(64, 'a'))) << status;
  EXPECT_TRUE(BlobKeys().empty());
}

TEST_F(AttachmentsTest, HeaderFieldsAreCheckedNamingTheField) {
  options_.max_file_bytes = 1000;
  struct Case {
    std::function<void(v1::UploadHeader&)> change;
    Code code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](auto& h) { h.clear_session_id(); }, Code::kInvalidArgument,
       "header.session_id: must not be empty"},
      {[](auto& h) { h.clear_upload_id(); }, Code::kInvalidArgument,
       "header.upload_id: must not be empty"},
      {[](auto& h) { h.set_upload_id(std::string(65, 'a')); }, Code::kInvalidArgument,
       "header.upload_id: longer than 64"},
      {[](auto& h) { h.set_upload_id("a/b"); }, Code::kInvalidArgument, "header.upload_id"},
      {[](auto& h) { h.clear_file_name(); }, Code::kInvalidArgument,
       "header.file_name: must not be empty"},
      {[](auto& h) { h.set_file_name("../etc/passwd"); }, Code::kInvalidArgument,
       "header.file_name: must not contain '/'"},
      {[](auto& h) { h.set_file_name("a\\b"); }, Code::kInvalidArgument, "header.file_name"},
      {[](auto& h) { h.set_file_name("a\nb"); }, Code::kInvalidArgument,
       "header.file_name: must not contain control characters"},
      {[](auto& h) { h.set_file_name("a\xC2\x85" "b"); }, Code::kInvalidArgument,
       "header.file_name: must not contain control characters"},
      {[](auto& h) { h.set_file_name("\xFF.png"); }, Code::kInvalidArgument,
       "header.file_name: must be valid UTF-8"},
      {[](auto& h) { h.set_file_name(std::string(256, 'a')); }, Code::kInvalidArgument,
       "header.file_name: at most 255 characters"},
      {[](auto& h) { h.clear_content_type(); }, Code::kInvalidArgument,
       "header.content_type: must not be empty"},
      {[](auto& h) { h.set_size_bytes(0); }, Code::kInvalidArgument, "header.size_bytes"},
      {[](auto& h) { h.set_size_bytes(1001); }, Code::kResourceExhausted,
       "header.size_bytes: 1001 bytes is over the limit of 1000 bytes per file"},
      {[](auto& h) { h.set_sha256("abc"); }, Code::kInvalidArgument,
       "header.sha256: must be 64 hex characters"},
      {[](auto& h) { h.set_sha256(std::string(64, 'g')); }, Code::kInvalidArgument,
       "header.sha256: must be 64 hex characters"},
  };
  for (const Case& c : cases) {
    v1::UploadHeader header = Header("u-1", files::Png(), "image/png");
    c.change(header);
    absl::Status status = attachments().BeginUpload(kCustomer, header).status();
    EXPECT_EQ(status.code(), c.code) << status;
    EXPECT_TRUE(absl::StartsWith(status.message(), c.message)) << status;
    status = attachments().FinishUpload(kCustomer, header, files::Png()).status();
    EXPECT_EQ(status.code(), c.code) << status;
  }
  // 255 characters of several bytes each are fine.
  v1::UploadHeader header = Header("A.b_c:d-9", files::Png(), "image/png");
  std::string name;
  for (int i = 0; i < 255; ++i) name += "\xC3\xA9";
  header.set_file_name(name);
  EXPECT_TRUE(attachments().BeginUpload(kCustomer, header).ok());
  EXPECT_TRUE(backend_.records().empty());
}

TEST_F(AttachmentsTest, ARetryIsAnsweredWithTheFirstUploadAndStoredOnce) {
  const std::string png = files::Png(true);
  const v1::UploadHeader header = Header("u-1", png, "image/png");
  absl::StatusOr<Attachments::Uploaded> first = Upload(kCustomer, header, png);
  ASSERT_TRUE(first.ok()) << first.status();

  // A retry is known from its header: the bytes need not be sent again.
  absl::StatusOr<Attachments::Began> began = attachments().BeginUpload(kCustomer, header);
  ASSERT_TRUE(began.ok()) << began.status();
  ASSERT_TRUE(began->replayed.has_value());
  EXPECT_EQ(began->replayed->attachment_id(), first->attachment.attachment_id());
  // And when they are (the first answer was lost mid-way), nothing is stored.
  absl::StatusOr<Attachments::Uploaded> again =
      attachments().FinishUpload(kCustomer, header, png);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->attachment.attachment_id(), first->attachment.attachment_id());

  EXPECT_EQ(BlobKeys().size(), 1u);
  EXPECT_EQ(backend_.writes(), 1);
  EXPECT_EQ(metrics_.upload_stored->Value(), 1);
  EXPECT_EQ(metrics_.upload_replayed->Value(), 2);
  // The retry gets the attachment as it stands now.
  ASSERT_EQ(*attachments().ScanPending(), 1);
  EXPECT_EQ(attachments().BeginUpload(kCustomer, header)->replayed->state(),
            v1::ATTACHMENT_STATE_CLEAN);
}

TEST_F(AttachmentsTest, AnUploadIdUsedForAnotherFileIsRefused) {
  ASSERT_TRUE(Upload(kCustomer, Header("u-1", files::Png(), "image/png"), files::Png()).ok());
  const v1::UploadHeader other = Header("u-1", files::Gif(), "image/gif");
  EXPECT_EQ(attachments().BeginUpload(kCustomer, other).status().code(), Code::kAlreadyExists);
  absl::Status status = attachments().FinishUpload(kCustomer, other, files::Gif()).status();
  EXPECT_EQ(status.code(), Code::kAlreadyExists);
  EXPECT_TRUE(absl::StartsWith(status.message(), "header.upload_id")) << status;
  // The same name in another session, or for another uploader, is another key.
  EXPECT_TRUE(Upload(kAgent, other, files::Gif()).ok());
  EXPECT_EQ(backend_.records().size(), 2u);
  EXPECT_EQ(metrics_.upload_conflict->Value(), 2);
}

TEST_F(AttachmentsTest, TwoUploadsWithOneKeyAtOnceStoreOneAttachment) {
  const std::string png = files::Png();
  const v1::UploadHeader header = Header("u-1", png, "image/png");
  absl::Notification writing;
  absl::Notification release;
  backend_.SetBeforeWrite([&](const AttachmentRecord&) {
    if (!writing.HasBeenNotified()) {
      writing.Notify();
      release.WaitForNotification();
    }
  });
  absl::StatusOr<Attachments::Uploaded> first;
  std::thread t([&] { first = attachments().FinishUpload(kCustomer, header, png); });
  writing.WaitForNotification();
  absl::StatusOr<Attachments::Uploaded> second;
  std::thread u([&] { second = attachments().FinishUpload(kCustomer, header, png); });
  release.Notify();
  t.join();
  u.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(first->replayed);
  EXPECT_TRUE(second->replayed);
  EXPECT_EQ(first->attachment.attachment_id(), second->attachment.attachment_id());
  EXPECT_EQ(backend_.writes(), 1);
}

TEST_F(AttachmentsTest, AnUploadStoredMeanwhileByAnotherProcessIsAnsweredAsARetry) {
  const std::string png = files::Png();
  const v1::UploadHeader header = Header("u-1", png, "image/png");
  AttachmentRecord theirs;
  backend_.SetBeforeWrite([&](const AttachmentRecord& mine) {
    if (!theirs.upload_id.empty()) return;
    theirs = mine;
    theirs.attachment.set_attachment_id("att-theirs");
    backend_.Insert(theirs);
  });
  absl::StatusOr<Attachments::Uploaded> up = attachments().FinishUpload(kCustomer, header, png);
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_TRUE(up->replayed);
  EXPECT_EQ(up->attachment.attachment_id(), "att-theirs");
  EXPECT_EQ(backend_.records().size(), 1u);
}

TEST_F(AttachmentsTest, TheDailyQuotaCountsFilesAndBytesPerUploader) {
  options_.max_files_per_day = 2;
  const std::string png = files::Png();
  ASSERT_TRUE(Upload(kCustomer, Header("u-1", png, "image/png"), png).ok());
  clock_.Advance(absl::Hours(12));
  ASSERT_TRUE(Upload(kCustomer, Header("u-2", png, "image/png"), png).ok());
  absl::Status status = Upload(kCustomer, Header("u-3", png, "image/png"), png).status();
  EXPECT_EQ(status.code(), Code::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(status.message(), "at most 2 files")) << status;
  // A retry of a stored upload is no new file.
  EXPECT_TRUE(Upload(kCustomer, Header("u-2", png, "image/png"), png).ok());
  // Others have their own quota; the first upload leaves the window.
  EXPECT_TRUE(Upload(kOtherCustomer, Header("u-3", png, "image/png", "s-2"), png).ok());
  clock_.Advance(absl::Hours(12) + absl::Seconds(1));
  EXPECT_TRUE(Upload(kCustomer, Header("u-3", png, "image/png"), png).ok());

  options_.max_files_per_day = 100;
  options_.max_bytes_per_day = 2 * static_cast<int64_t>(png.size()) + 10;
  attachments_.reset();
  status = Upload(kCustomer, Header("u-4", png, "image/png"), png).status();
  EXPECT_EQ(status.code(), Code::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(status.message(), "bytes per uploader")) << status;
  EXPECT_EQ(metrics_.upload_over_limit->Value(), 2);
}

TEST_F(AttachmentsTest, AccessErrorsOfTheSessionPassThrough) {
  const std::string png = files::Png();
  EXPECT_EQ(Upload(kCustomer, Header("u-1", png, "image/png", "s-nope"), png).status(),
            NotFound());
  EXPECT_EQ(Upload(kOtherCustomer, Header("u-1", png, "image/png"), png).status(), NotFound());
  const v1::Attachment a = CleanPng();
  EXPECT_EQ(attachments().Get(kOtherCustomer, "s-1", a.attachment_id(), false).status(),
            NotFound());
  EXPECT_TRUE(attachments().Get(kSupervisor, "s-1", a.attachment_id(), false).ok());
  backend_.CloseSession("s-1", clock_.Now());
  EXPECT_EQ(Upload(kCustomer, Header("u-2", png, "image/png"), png).status().code(),
            Code::kFailedPrecondition);
  EXPECT_EQ(metrics_.upload_refused->Value(), 3);
  EXPECT_TRUE(attachments().Get(kCustomer, "s-1", a.attachment_id(), false).ok());
}

TEST_F(AttachmentsTest, OnlyACleanAttachmentOfTheSessionIsServed) {
  const std::string png = files::Png(true);
  absl::StatusOr<Attachments::Uploaded> up =
      Upload(kCustomer, Header("u-1", png, "image/png"), png);
  ASSERT_TRUE(up.ok());
  const std::string id = up->attachment.attachment_id();
  absl::Status status = attachments().Get(kAgent, "s-1", id, false).status();
  EXPECT_EQ(status.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), "PENDING_SCAN")) << status;

  ASSERT_EQ(*attachments().ScanPending(), 1);
  absl::StatusOr<Attachments::Download> got = attachments().Get(kAgent, "s-1", id, true);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->attachment.state(), v1::ATTACHMENT_STATE_CLEAN);
  EXPECT_EQ(got->bytes, *blobs_->Get(up->attachment.sha256()));
  // Files have no URL to sign: the bytes come instead.
  EXPECT_FALSE(got->signed_url.has_value());
  ASSERT_EQ(backend_.downloads().size(), 1u);
  EXPECT_EQ(backend_.downloads()[0].caller.id, kAgent.id);
  EXPECT_EQ(backend_.downloads()[0].attachment.attachment_id(), id);
  EXPECT_FALSE(backend_.downloads()[0].signed_url);
  EXPECT_EQ(metrics_.download_bytes->Value(), 1);

  // Another session's id, or none, is the same NOT_FOUND.
  backend_.AddSession("s-3", kCustomer.id);
  const absl::Status missing = attachments().Get(kCustomer, "s-1", "att-nope", false).status();
  EXPECT_EQ(missing.code(), Code::kNotFound);
  EXPECT_EQ(attachments().Get(kCustomer, "s-3", id, false).status(), missing);
  EXPECT_EQ(attachments().Get(kCustomer, "s-1", "", false).status().code(),
            Code::kInvalidArgument);
}

TEST_F(AttachmentsTest, MalwareIsRejectedAndNeverServed) {
  const std::string eicar = testing::Eicar();
  absl::StatusOr<Attachments::Uploaded> up =
      Upload(kCustomer, Header("u-1", eicar, "text/plain"), eicar);
  ASSERT_TRUE(up.ok()) << up.status();
  clock_.Advance(absl::Seconds(3));
  EXPECT_EQ(*attachments().ScanPending(), 1);
  std::optional<AttachmentRecord> record = backend_.record(up->attachment.attachment_id());
  EXPECT_EQ(record->attachment.state(), v1::ATTACHMENT_STATE_REJECTED);
  EXPECT_EQ(record->attachment.rejection_reason(), testing::kEicarSignature);
  EXPECT_EQ(record->updated_at, clock_.Now());
  absl::Status status =
      attachments().Get(kCustomer, "s-1", up->attachment.attachment_id(), false).status();
  EXPECT_EQ(status.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), "REJECTED")) << status;
  EXPECT_TRUE(backend_.downloads().empty());
  // Nothing is left to scan.
  EXPECT_EQ(*attachments().ScanPending(), 0);
  EXPECT_EQ(scanner_.calls(), 1);
  EXPECT_EQ(metrics_.scan_rejected->Value(), 1);
}

TEST_F(AttachmentsTest, AFileTooLargeForTheScannerIsRejectedNotServedUnscanned) {
  scanner_.Fail(absl::ResourceExhaustedError("INSTREAM size limit exceeded"));
  absl::StatusOr<Attachments::Uploaded> up =
      Upload(kCustomer, Header("u-1", files::Pdf(), "application/pdf"), files::Pdf());
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(*attachments().ScanPending(), 1);
  const v1::Attachment a = backend_.record(up->attachment.attachment_id())->attachment;
  EXPECT_EQ(a.state(), v1::ATTACHMENT_STATE_REJECTED);
  EXPECT_TRUE(absl::StartsWith(a.rejection_reason(), "could not be scanned")) << a.DebugString();
}

TEST_F(AttachmentsTest, WhileTheScannerIsDownFilesStayPendingAndAreTriedAgainLater) {
  options_.scan_retry = absl::Seconds(10);
  scanner_.Fail(absl::UnavailableError("clamd: connection refused"));
  std::vector<std::string> ids;
  for (const std::string& pdf : {files::Pdf(), files::Pdf() + "\n", files::Pdf() + "\n\n"}) {
    absl::StatusOr<Attachments::Uploaded> up = Upload(
        kCustomer, Header(absl::StrCat("u-", ids.size()), pdf, "application/pdf"), pdf);
    ASSERT_TRUE(up.ok()) << up.status();
    ids.push_back(up->attachment.attachment_id());
    clock_.Advance(absl::Seconds(1));
  }
  // One try per scan_retry while it is down, not one per file.
  EXPECT_EQ(*attachments().ScanPending(), 0);
  EXPECT_EQ(scanner_.calls(), 1);
  clock_.Advance(absl::Seconds(9));
  EXPECT_EQ(*attachments().ScanPending(), 0);
  EXPECT_EQ(scanner_.calls(), 1);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(*attachments().ScanPending(), 0);
  EXPECT_EQ(scanner_.calls(), 2);
  EXPECT_EQ(metrics_.scan_oldest_pending_seconds->Value(), 13);
  for (const std::string& id : ids) {
    EXPECT_EQ(backend_.record(id)->attachment.state(), v1::ATTACHMENT_STATE_PENDING_SCAN);
    EXPECT_EQ(attachments().Get(kCustomer, "s-1", id, false).status().code(),
              Code::kFailedPrecondition);
  }

  scanner_.Fail(absl::OkStatus());
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(*attachments().ScanPending(), 3);
  EXPECT_EQ(*attachments().ScanPending(), 0);
  EXPECT_EQ(metrics_.scan_oldest_pending_seconds->Value(), 0);
  EXPECT_EQ(backend_.record(ids[0])->scan_attempts, 2);
  EXPECT_EQ(backend_.record(ids[1])->scan_attempts, 0);
  for (const std::string& id : ids) {
    EXPECT_EQ(backend_.record(id)->attachment.state(), v1::ATTACHMENT_STATE_CLEAN);
    EXPECT_TRUE(attachments().Get(kCustomer, "s-1", id, false).ok());
  }
  EXPECT_EQ(metrics_.scan_unavailable->Value(), 2);
  EXPECT_EQ(metrics_.scan_clean->Value(), 3);
  EXPECT_EQ(metrics_.scan_seconds->Collect().histogram.sample_count, 5u);
}

TEST_F(AttachmentsTest, FilesTheScannerFailsOnDoNotHoldUpNewerOnes) {
  options_.scan_retry = absl::Minutes(1);
  for (int i = 0; i < Attachments::kBatch; ++i) {
    const std::string text = absl::StrCat("unscannable ", i, "\n");
    ASSERT_TRUE(Upload(kCustomer, Header(absl::StrCat("bad-", i), text, "text/plain"), text).ok());
  }
  clock_.Advance(absl::Seconds(1));
  const std::string text = "fine\n";
  absl::StatusOr<Attachments::Uploaded> good =
      Upload(kCustomer, Header("good", text, "text/plain"), text);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*attachments().ScanPending(), 0);
  EXPECT_EQ(scanner_.calls(), Attachments::kBatch);
  EXPECT_EQ(*attachments().ScanPending(), 1);
  EXPECT_EQ(backend_.record(good->attachment.attachment_id())->attachment.state(),
            v1::ATTACHMENT_STATE_CLEAN);
  EXPECT_EQ(scanner_.calls(), Attachments::kBatch + 1);
  // They are tried again once due, and stay pending.
  clock_.Advance(absl::Minutes(1));
  EXPECT_EQ(*attachments().ScanPending(), 0);
  EXPECT_EQ(scanner_.calls(), 2 * Attachments::kBatch + 1);
  EXPECT_EQ(backend_.PendingScans(1000)->size(), static_cast<size_t>(Attachments::kBatch));
}

TEST_F(AttachmentsTest, AFileWhoseBlobIsGoneIsRejected) {
  absl::StatusOr<Attachments::Uploaded> up =
      Upload(kCustomer, Header("u-1", files::Png(), "image/png"), files::Png());
  ASSERT_TRUE(up.ok());
  ASSERT_TRUE(blobs_->Delete(up->attachment.sha256()).ok());
  EXPECT_EQ(*attachments().ScanPending(), 1);
  const v1::Attachment a = backend_.record(up->attachment.attachment_id())->attachment;
  EXPECT_EQ(a.state(), v1::ATTACHMENT_STATE_REJECTED);
  EXPECT_TRUE(absl::StrContains(a.rejection_reason(), "missing")) << a.rejection_reason();
  EXPECT_EQ(scanner_.calls(), 0);
}

TEST_F(AttachmentsTest, ARealClamdRejectsEicarAndPassesAScreenshot) {
  testing::ClamdServer clamd;
  scan::ClamdOptions clamd_options;
  clamd_options.address = clamd.unix_address();
  std::unique_ptr<scan::ClamdClient> client = *scan::ClamdClient::Create(clamd_options);
  // clamd keeps real time.
  Attachments real(&backend_, blobs_.get(), classifier_.get(), client.get(), RealClock(),
                   nullptr, options_);
  const std::string eicar = testing::Eicar();
  absl::StatusOr<Attachments::Uploaded> bad =
      real.FinishUpload(kCustomer, Header("u-1", eicar, "text/plain"), eicar);
  absl::StatusOr<Attachments::Uploaded> good =
      real.FinishUpload(kCustomer, Header("u-2", files::Jpeg(true), "image/jpeg"),
                        files::Jpeg(true));
  ASSERT_TRUE(bad.ok()) << bad.status();
  ASSERT_TRUE(good.ok()) << good.status();
  ASSERT_EQ(*real.ScanPending(), 2) << clamd.log();
  const v1::Attachment rejected = backend_.record(bad->attachment.attachment_id())->attachment;
  EXPECT_EQ(rejected.state(), v1::ATTACHMENT_STATE_REJECTED);
  EXPECT_TRUE(absl::StartsWith(rejected.rejection_reason(), testing::kEicarSignature))
      << rejected.rejection_reason();
  EXPECT_EQ(real.Get(kCustomer, "s-1", rejected.attachment_id(), false).status().code(),
            Code::kFailedPrecondition);
  absl::StatusOr<Attachments::Download> got =
      real.Get(kCustomer, "s-1", good->attachment.attachment_id(), false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(absl::StrContains(got->bytes, files::GpsLatitude()));
}

TEST_F(AttachmentsTest, RetentionDeletesBlobsNoLiveAttachmentUses) {
  options_.retention = absl::Hours(24 * 30);
  const std::string png = files::Png();
  const std::string pdf = files::Pdf();
  const std::string shared =
      Upload(kCustomer, Header("u-1", png, "image/png"), png)->attachment.attachment_id();
  const std::string own =
      Upload(kCustomer, Header("u-2", pdf, "application/pdf"), pdf)->attachment.attachment_id();
  // The same screenshot in another session: one blob for both.
  const std::string other =
      Upload(kOtherCustomer, Header("u-1", png, "image/png", "s-2"), png)
          ->attachment.attachment_id();
  ASSERT_EQ(*attachments().ScanPending(), 3);
  ASSERT_EQ(BlobKeys().size(), 2u);

  backend_.CloseSession("s-1", clock_.Now());
  clock_.Advance(absl::Hours(24 * 30));
  EXPECT_EQ(*attachments().ApplyRetention(), 0);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(*attachments().ApplyRetention(), 2);

  for (const std::string& id : {shared, own}) {
    const AttachmentRecord r = *backend_.record(id);
    EXPECT_EQ(r.attachment.state(), v1::ATTACHMENT_STATE_DELETED);
    EXPECT_EQ(r.attachment.rejection_reason(),
              "retention: session closed more than 30 days ago");
    EXPECT_EQ(r.updated_at, clock_.Now());
    absl::Status status = attachments().Get(kCustomer, "s-1", id, false).status();
    EXPECT_EQ(status.code(), Code::kFailedPrecondition);
    EXPECT_TRUE(absl::StrContains(status.message(), "DELETED")) << status;
  }
  EXPECT_EQ(BlobKeys(), std::vector<std::string>{blob::ContentAddress(png)});
  EXPECT_TRUE(attachments().Get(kOtherCustomer, "s-2", other, false).ok());
  EXPECT_EQ(*attachments().ApplyRetention(), 0);
  EXPECT_EQ(metrics_.attachments_deleted->Value(), 2);

  // Once the other session is past retention too, the blob goes.
  backend_.CloseSession("s-2", clock_.Now());
  clock_.Advance(absl::Hours(24 * 31));
  EXPECT_EQ(*attachments().ApplyRetention(), 1);
  EXPECT_TRUE(BlobKeys().empty());
  EXPECT_TRUE(attachments().CheckBlobs()->empty());
}

TEST_F(AttachmentsTest, WithoutRetentionNothingIsDeleted) {
  const v1::Attachment a = CleanPng();
  backend_.CloseSession("s-1", clock_.Now());
  clock_.Advance(absl::Hours(24 * 3650));
  EXPECT_EQ(*attachments().ApplyRetention(), 0);
  EXPECT_EQ(backend_.record(a.attachment_id())->attachment.state(),
            v1::ATTACHMENT_STATE_CLEAN);
}

TEST_F(AttachmentsTest, CheckBlobsFindsAttachmentsWhoseFileIsGone) {
  const v1::Attachment png = CleanPng();
  absl::StatusOr<Attachments::Uploaded> pdf =
      Upload(kCustomer, Header("u-2", files::Pdf(), "application/pdf"), files::Pdf());
  ASSERT_TRUE(pdf.ok());
  EXPECT_TRUE(attachments().CheckBlobs()->empty());
  ASSERT_TRUE(blobs_->Delete(pdf->attachment.sha256()).ok());
  EXPECT_EQ(*attachments().CheckBlobs(),
            std::vector<std::string>{pdf->attachment.attachment_id()});
  // Records past one page are checked too.
  for (int i = 0; i < Attachments::kBatch + 5; ++i) {
    AttachmentRecord r = *backend_.record(png.attachment_id());
    r.attachment.set_attachment_id(absl::StrCat("att-copy-", i));
    r.upload_id = absl::StrCat("copy-", i);
    backend_.Insert(r);
  }
  ASSERT_TRUE(blobs_->Delete(png.sha256()).ok());
  EXPECT_EQ(attachments().CheckBlobs()->size(), Attachments::kBatch + 7u);
}

TEST_F(AttachmentsTest, FromAnObjectStoreADownloadMayBeASignedUrl) {
  testing::FakeS3Server s3;
  blob::S3BlobStore::Options s3_options;
  s3_options.endpoint = s3.endpoint();
  s3_options.bucket = testing::FakeS3Server::kBucket;
  s3_options.access_key_id = testing::FakeS3Server::kAccessKeyId;
  s3_options.secret_access_key = testing::FakeS3Server::kSecretAccessKey;
  s3_options.timeout = absl::Seconds(5);
  s3_options.clock = &clock_;
  std::unique_ptr<blob::S3BlobStore> store = *blob::S3BlobStore::Create(s3_options);
  blob_store_ = store.get();

  const v1::Attachment a = CleanPng();
  absl::StatusOr<Attachments::Download> got =
      attachments().Get(kCustomer, "s-1", a.attachment_id(), true);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->signed_url.has_value());
  EXPECT_TRUE(absl::StartsWith(got->signed_url->url(), s3.endpoint() + "/attachments/" +
                                                           a.sha256() + "?"))
      << got->signed_url->url();
  EXPECT_TRUE(absl::StrContains(got->signed_url->url(), "X-Amz-Expires=300&"));
  EXPECT_EQ(protoutil::FromTimestamp(got->signed_url->expires_at()),
            clock_.Now() + absl::Minutes(5));
  EXPECT_TRUE(got->bytes.empty());
  EXPECT_TRUE(backend_.downloads().back().signed_url);
  EXPECT_EQ(metrics_.download_signed_url->Value(), 1);

  // Without asking, the server streams the bytes.
  got = attachments().Get(kCustomer, "s-1", a.attachment_id(), false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->bytes, files::Png());
  EXPECT_FALSE(backend_.downloads().back().signed_url);

  // A store that is down is UNAVAILABLE.
  s3.Stop();
  EXPECT_EQ(attachments().Get(kCustomer, "s-1", a.attachment_id(), false).status().code(),
            Code::kUnavailable);
}

}  // namespace
}  // namespace switchboard::sessions
