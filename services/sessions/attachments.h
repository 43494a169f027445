#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/blob/blob_store.h"
#include "libs/clock/clock.h"
#include "libs/filetype/file_type.h"
#include "libs/scan/scanner.h"
#include "services/sessions/attachment_backend.h"
#include "services/sessions/metrics.h"
#include "services/sessions/model.h"
#include "services/sessions/rules.h"
#include "switchboard/sessions/v1/sessions_service.pb.h"

namespace switchboard::sessions {

struct AttachmentsOptions {
  int64_t max_file_bytes = 20 << 20;
  // Per uploader, in any 24 hours.
  int max_files_per_day = 100;
  int64_t max_bytes_per_day = int64_t{500} << 20;
  // From the first request to the last chunk.
  absl::Duration upload_timeout = absl::Minutes(5);
  // A scan gets this long; a scanner that is down is tried again after
  // `scan_retry`.
  absl::Duration scan_timeout = absl::Seconds(30);
  absl::Duration scan_retry = absl::Seconds(10);
  // Attachments of sessions closed longer ago are deleted; zero keeps
  // them forever.
  absl::Duration retention = absl::ZeroDuration();
  // How long a signed download URL lives.
  absl::Duration signed_url_ttl = absl::Minutes(5);
};

// The attachment logic: checks and stores uploads, scans them, serves
// downloads, applies retention. Knows nothing of gRPC or SQL. Thread-safe;
// blocking (call from worker threads).
//
// Two uploads with the same (session, uploader, upload_id) never run at
// once in this process: FinishUpload waits for the first to end, then
// answers as a retry of it (`replayed`). The background tasks (ScanPending,
// ApplyRetention, CheckBlobs) run one at a time, and retention never
// deletes a blob an upload in this process is storing.
class Attachments {
 public:
  // None owned; all must outlive this. `metrics` may be null.
  Attachments(AttachmentBackend* backend, blob::BlobStore* blobs,
              const filetype::FileTypeClassifier* classifier, scan::Scanner* scanner,
              Clock* clock, SessionsMetrics* metrics, AttachmentsOptions options);

  // Checks an upload's header before its bytes arrive: the fields, the
  // caller's access, the size limit and quota. When the upload is a retry
  // of one already stored, returns that attachment (the bytes need not be
  // read). Errors as UploadAttachment documents; the backend's access
  // errors pass through.
  struct Began {
    std::optional<v1::Attachment> replayed;
  };
  absl::StatusOr<Began> BeginUpload(const Caller& caller, const v1::UploadHeader& header);
  // Stores the upload once all its bytes arrived: BeginUpload's checks
  // again, size and SHA-256 as declared, the sniffed type allowed and as
  // declared, metadata removed, the bytes in the blob store, the record
  // PENDING_SCAN. Returns the attachment (and whether it answers a retry).
  // INVALID_ARGUMENT messages about the bytes start with "file: ".
  struct Uploaded {
    v1::Attachment attachment;
    bool replayed = false;
  };
  absl::StatusOr<Uploaded> FinishUpload(const Caller& caller, const v1::UploadHeader& header,
                                        std::string bytes);

  // A CLEAN attachment for `caller`: its bytes, or a signed URL when asked
  // for and the blob store can sign one. Records the download first (no
  // record, no file). NOT_FOUND for a missing attachment, one of another
  // session, or a session the caller may not see; FAILED_PRECONDITION
  // naming the state for PENDING_SCAN, REJECTED and DELETED; the blob
  // store's UNAVAILABLE passes through.
  struct Download {
    v1::Attachment attachment;
    std::string bytes;
    std::optional<v1::SignedUrl> signed_url;
  };
  absl::StatusOr<Download> Get(const Caller& caller, const std::string& session_id,
                               const std::string& attachment_id, bool prefer_url);

  // Background work, driven by the service's loop (and tests).
  //
  // Scans PENDING_SCAN attachments that are due (at most kBatch, oldest
  // first); returns how many got a verdict. A file the scanner fails on
  // stays pending and is tried again after `scan_retry`; when the scanner
  // (or the blob store) is UNAVAILABLE, the pass stops and the next call
  // before `scan_retry` scans nothing. A file too large for the scanner, or
  // whose blob is missing, is REJECTED: never served unscanned. The
  // scanner's deadline is `scan_timeout` from the clock's now.
  absl::StatusOr<int> ScanPending();
  // Marks attachments past retention DELETED (at most kBatch per call: call
  // again while it returns kBatch), then deletes their blobs unless another
  // attachment still uses them. Returns how many were marked.
  absl::StatusOr<int> ApplyRetention();
  // At start: every record that is not DELETED must have its blob. Returns
  // the ids of those that do not (logged; they stay as they are).
  absl::StatusOr<std::vector<std::string>> CheckBlobs();

  // Records per background batch.
  static constexpr int kBatch = 64;

 private:
  // BeginUpload without counting its outcome (FinishUpload runs it too).
  absl::StatusOr<Began> Check(const Caller& caller, const v1::UploadHeader& header);
  absl::StatusOr<Uploaded> Store(const Caller& caller, const v1::UploadHeader& header,
                                 std::string bytes);
  // The stored record for a retry of `header`; ALREADY_EXISTS if the
  // upload_id was used for a different file.
  absl::StatusOr<std::optional<v1::Attachment>> FindRetry(const Caller& caller,
                                                          const v1::UploadHeader& header);
  // Puts `bytes` and writes `record`, keeping retention off the blob.
  absl::Status PutAndWrite(absl::string_view bytes, const AttachmentRecord& record);
  // The verdict on one record, or why there is none yet.
  absl::StatusOr<AttachmentRecord> Scan(AttachmentRecord record);
  void CountUpload(const absl::Status& status, bool replayed);

  AttachmentBackend* const backend_;
  blob::BlobStore* const blobs_;
  const filetype::FileTypeClassifier* const classifier_;
  scan::Scanner* const scanner_;
  Clock* const clock_;
  SessionsMetrics* const metrics_;
  const AttachmentsOptions options_;

  absl::Mutex mu_;
  absl::CondVar changed_;
  // Keys of the uploads being stored: session, uploader and upload_id.
  absl::flat_hash_set<std::string> uploads_ ABSL_GUARDED_BY(mu_);
  // Blobs being stored by uploads (how many), and being deleted by
  // retention: neither starts while the other runs on the same blob.
  absl::flat_hash_map<std::string, int> blobs_writing_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> blobs_deleting_ ABSL_GUARDED_BY(mu_);

  // Held by each background task for its whole run.
  absl::Mutex background_mu_;
  // PENDING_SCAN records whose last scan failed: when to try again, and
  // how many tries failed.
  struct Retry {
    absl::Time next = absl::InfinitePast();
    int failures = 0;
  };
  absl::flat_hash_map<std::string, Retry> retries_ ABSL_GUARDED_BY(background_mu_);
  // No scans before this: the scanner was down.
  absl::Time paused_until_ ABSL_GUARDED_BY(background_mu_) = absl::InfinitePast();
};

}  // namespace switchboard::sessions
