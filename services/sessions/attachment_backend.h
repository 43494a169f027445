#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/sessions/model.h"
#include "services/sessions/rules.h"
#include "switchboard/sessions/v1/sessions_service.pb.h"

namespace switchboard::sessions {

// What the attachment logic needs of the sessions logic and its store:
// Sessions implements it (over SessionStore); tests use a fake.
class AttachmentBackend {
 public:
  virtual ~AttachmentBackend() = default;

  // OK when `caller` may attach files to `session_id` now: its customer
  // (BOT, QUEUED, ASSIGNED) or its assigned agent (ASSIGNED). NOT_FOUND as
  // for a missing session; FAILED_PRECONDITION when the state does not
  // accept files from the caller.
  virtual absl::Status CheckUpload(const Caller& caller, const std::string& session_id) = 0;
  // OK when `caller` may download the session's files: its customer, its
  // current or past agents, supervisors. NOT_FOUND otherwise.
  virtual absl::Status CheckDownload(const Caller& caller, const std::string& session_id) = 0;

  // Commits `record` (new, or replacing the one with its attachment id)
  // with an `attachment_updated` event on the session's stream (none once
  // the session is CLOSED) and an AttachmentChanged outbox event; returns
  // once durable. ALREADY_EXISTS when another attachment holds the record's
  // (session, uploader, upload_id), e.g. a concurrent upload with the same
  // key: nothing is written.
  virtual absl::Status WriteAttachment(const AttachmentRecord& record) = 0;
  // Commits an AttachmentDownloaded outbox event (the audit trail).
  virtual absl::Status RecordDownload(const Caller& caller, const v1::Attachment& attachment,
                                      bool signed_url) = 0;

  // Reads of committed records.
  virtual absl::StatusOr<std::optional<AttachmentRecord>> FindAttachment(
      const std::string& attachment_id) = 0;
  virtual absl::StatusOr<std::optional<AttachmentRecord>> FindUpload(
      const std::string& session_id, const std::string& uploader_id,
      const std::string& upload_id) = 0;
  // PENDING_SCAN records, oldest first, at most `limit`.
  virtual absl::StatusOr<std::vector<AttachmentRecord>> PendingScans(int limit) = 0;
  // Files and bytes `uploader_id` uploaded at or after `since` (quota).
  struct Usage {
    int files = 0;
    int64_t bytes = 0;
  };
  virtual absl::StatusOr<Usage> UploadedSince(const std::string& uploader_id,
                                              absl::Time since) = 0;
  // Records not DELETED whose session was CLOSED before `closed_before`,
  // at most `limit` (retention).
  virtual absl::StatusOr<std::vector<AttachmentRecord>> ExpiredAttachments(
      absl::Time closed_before, int limit) = 0;
  // Whether a record that is not DELETED still uses the blob `blob_key`.
  virtual absl::StatusOr<bool> BlobInUse(const std::string& blob_key) = 0;
  // Every record, by attachment id, after `after_id`, at most `limit`.
  virtual absl::StatusOr<std::vector<AttachmentRecord>> ListAttachments(
      const std::string& after_id, int limit) = 0;
};

}  // namespace switchboard::sessions
