#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/sessions/model.h"

namespace switchboard::sessions {

// Durable sessions state. Implementations: SqliteSessionStore.
class SessionStore {
 public:
  struct Contents {
    std::vector<SessionRecord> sessions;
    // Messages that carry a client_message_id (the idempotency keys).
    std::vector<std::pair<std::string, StoredMessage>> keyed_messages;
  };

  virtual ~SessionStore() = default;

  // Reads every session and keyed message (at start).
  virtual absl::StatusOr<Contents> Load() = 0;

  // Commits `write` (sessions, session events and outbox events in one
  // transaction). Writes commit in the order Apply is called; `done` then
  // runs with the outcome, in the same order, on a thread of the store's.
  // `done` must not block.
  virtual void Apply(SessionWrite write, std::function<void(absl::Status)> done) = 0;

  // Committed events of a session with after < sequence <= up_to, in
  // sequence order, at most `limit`. Blocking; safe from any thread.
  virtual absl::StatusOr<std::vector<v1::SessionEvent>> ReadEvents(
      const std::string& session_id, int64_t after, int64_t up_to, int limit) = 0;

  // Committed messages of a session with after < sequence < before (0: no
  // bound), oldest first or newest first, at most `limit`. Blocking.
  virtual absl::StatusOr<std::vector<v1::Message>> ReadMessages(
      const std::string& session_id, int64_t after, int64_t before,
      bool newest_first, int limit) = 0;
};

}  // namespace switchboard::sessions
