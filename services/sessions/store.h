#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/sessions/model.h"

namespace switchboard::sessions {

// What ListSessions asks the store for: sessions matching every filter set,
// newest first by (created_at, session_id), strictly older than `before`
// when it is set (the page cursor), at most `limit`.
struct SessionQuery {
  // Empty: any.
  std::string customer_id;
  // The agent the session is assigned to now. Empty: any.
  std::string agent_id;
  // Empty: any state.
  std::vector<v1::SessionState> states;
  common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  // created_after <= created_at < created_before.
  absl::Time created_after = absl::InfinitePast();
  absl::Time created_before = absl::InfiniteFuture();
  // (created_at in Unix microseconds, session_id) of the last session of the
  // previous page.
  std::optional<std::pair<int64_t, std::string>> before;
  int limit = 50;
};

// Durable sessions state. Implementations: SqliteSessionStore.
//
// Reads see committed writes only, and every write whose `done` has run
// (a read that starts after `done` ran sees it). Reads are blocking and
// safe from any thread; they never wait for the writer.
class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // The sessions with open work, read at start: every session that is not
  // CLOSED, and CLOSED ones whose routing call is still pending. Never the
  // whole history.
  virtual absl::StatusOr<std::vector<SessionRecord>> LoadOpen() = 0;

  // How many sessions are CLOSED (for the state gauge at start).
  virtual absl::StatusOr<int64_t> CountClosed() = 0;

  // The admission check for a write a client asked for: OK, or
  // RESOURCE_EXHAUSTED with a retry-after when the writer's backlog is full.
  // Call it before deciding the write; it changes nothing.
  virtual absl::Status Admit() = 0;

  // Commits `write` (sessions, session events and outbox events in one
  // transaction). Writes commit in the order Apply is called; `done` then
  // runs with the outcome, in the same order, on a thread of the store's
  // (or, for a store that is stopping, on the calling thread). `done` must
  // not block. The writes form a log without holes: once one fails, every
  // later one fails too (UNAVAILABLE) until the store is opened again, so
  // a write never lands on disk without one decided before it (a session's
  // sequence numbers stay gapless on disk). A stored session's
  // customer_id, created_at and create_request_id are the ones it was
  // created with: rewriting a session leaves them.
  virtual void Apply(SessionWrite write, std::function<void(absl::Status)> done) = 0;

  // One session; nullopt if there is none with that id.
  virtual absl::StatusOr<std::optional<SessionRecord>> ReadSession(
      const std::string& session_id) = 0;

  // The message of `session_id` stored with `client_message_id`, with the
  // fingerprint its idempotency check needs; nullopt if none. Indexed.
  virtual absl::StatusOr<std::optional<StoredMessage>> FindMessage(
      const std::string& session_id, const std::string& client_message_id) = 0;

  // The session `customer_id` created with `request_id`; nullopt if none.
  // Indexed.
  virtual absl::StatusOr<std::optional<std::string>> FindCreated(
      const std::string& customer_id, const std::string& request_id) = 0;

  // The session the verification token `token_id` is bound to; nullopt if
  // it was never put to use. Indexed.
  virtual absl::StatusOr<std::optional<std::string>> FindTokenBinding(
      const std::string& token_id) = 0;

  // See SessionQuery. Pages through indexes; never reads the whole table.
  virtual absl::StatusOr<std::vector<v1::Session>> ListSessions(
      const SessionQuery& query) = 0;

  // Committed events of a session with after < sequence <= up_to, in
  // sequence order, at most `limit`.
  virtual absl::StatusOr<std::vector<v1::SessionEvent>> ReadEvents(
      const std::string& session_id, int64_t after, int64_t up_to, int limit) = 0;

  // Committed messages of a session with after < sequence < before (0: no
  // bound), oldest first or newest first, at most `limit`.
  virtual absl::StatusOr<std::vector<v1::Message>> ReadMessages(
      const std::string& session_id, int64_t after, int64_t before,
      bool newest_first, int limit) = 0;

  // Attachments (committed records; see AttachmentBackend for what each
  // read is for). Each is indexed; none reads DELETED history except
  // FindAttachment, FindUpload and ListAttachments.
  virtual absl::StatusOr<std::optional<AttachmentRecord>> FindAttachment(
      const std::string& attachment_id) = 0;
  virtual absl::StatusOr<std::optional<AttachmentRecord>> FindUpload(
      const std::string& session_id, const std::string& uploader_id,
      const std::string& upload_id) = 0;
  // PENDING_SCAN, least recently changed first.
  virtual absl::StatusOr<std::vector<AttachmentRecord>> PendingScans(int limit) = 0;
  // Files and their bytes `uploader_id` uploaded at or after `since`.
  virtual absl::StatusOr<std::pair<int, int64_t>> UploadedSince(const std::string& uploader_id,
                                                               absl::Time since) = 0;
  // Not DELETED, of sessions CLOSED before `closed_before`.
  virtual absl::StatusOr<std::vector<AttachmentRecord>> ExpiredAttachments(
      absl::Time closed_before, int limit) = 0;
  // Whether a record that is not DELETED uses `blob_key`.
  virtual absl::StatusOr<bool> BlobInUse(const std::string& blob_key) = 0;
  // By attachment id, after `after_id`.
  virtual absl::StatusOr<std::vector<AttachmentRecord>> ListAttachments(
      const std::string& after_id, int limit) = 0;
};

}  // namespace switchboard::sessions
