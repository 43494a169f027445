#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/blob/blob_store.h"
#include "libs/clock/clock.h"
#include "libs/filetype/file_type.h"
#include "libs/scan/scanner.h"
#include "services/sessions/attachment_backend.h"
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
class Attachments {
 public:
  // None owned; all must outlive this.
  Attachments(AttachmentBackend* backend, blob::BlobStore* blobs,
              const filetype::FileTypeClassifier* classifier, scan::Scanner* scanner,
              Clock* clock, AttachmentsOptions options);

  // Checks an upload's header before its bytes arrive: the fields, the
  // caller's access, the size limit and quota. When the upload is a retry
  // of one already stored, returns that attachment (the bytes need not be
  // read). Errors as UploadAttachment documents.
  struct Began {
    std::optional<v1::Attachment> replayed;
  };
  absl::StatusOr<Began> BeginUpload(const Caller& caller, const v1::UploadHeader& header);
  // Stores the upload once all its bytes arrived: size and SHA-256 as
  // declared, the sniffed type allowed and as declared, metadata removed,
  // the bytes in the blob store, the record PENDING_SCAN. Returns the
  // attachment (and whether it answers a retry).
  struct Uploaded {
    v1::Attachment attachment;
    bool replayed = false;
  };
  absl::StatusOr<Uploaded> FinishUpload(const Caller& caller, const v1::UploadHeader& header,
                                        std::string bytes);

  // A CLEAN attachment for `caller`: its bytes, or a signed URL when asked
  // for and the blob store can sign one. Records the download.
  struct Download {
    v1::Attachment attachment;
    std::string bytes;
    std::optional<v1::SignedUrl> signed_url;
  };
  absl::StatusOr<Download> Get(const Caller& caller, const std::string& session_id,
                               const std::string& attachment_id, bool prefer_url);

  // Background work, driven by the service's loop (and tests).
  //
  // Scans PENDING_SCAN attachments that are due; returns how many got a
  // verdict. A scanner that is down leaves them pending.
  absl::StatusOr<int> ScanPending();
  // Deletes the blobs of attachments past retention, marking them DELETED.
  absl::StatusOr<int> ApplyRetention();
  // At start: every record that is not DELETED must have its blob. Returns
  // the ids of those that do not (logged; they stay as they are).
  absl::StatusOr<std::vector<std::string>> CheckBlobs();
};

}  // namespace switchboard::sessions
