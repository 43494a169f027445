#pragma once

// The transactional outbox on each backend, for tests that run the same
// cases on both: a service's SQLite file written through a GroupCommitter,
// and a fresh database on a real PostgreSQL server (libs/testing/postgres,
// one server per test binary, started on first use from the test's main
// thread). Both have a table agents(id TEXT PRIMARY KEY) beside the outbox,
// for writes that change state and append an event together.
//
// Threading: CommitEvent, Append and Rows may be called from any thread.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "libs/events/outbox.h"
#include "libs/events/outbox_store.h"
#include "switchboard/events/v1/event.pb.h"

namespace switchboard::events {

enum class OutboxBackendKind { kSqlite, kPostgres };

// "Sqlite" or "Postgres", for parameterised test names.
std::string OutboxBackendName(OutboxBackendKind kind);

class OutboxBackend {
 public:
  static std::unique_ptr<OutboxBackend> Make(OutboxBackendKind kind);
  virtual ~OutboxBackend() = default;

  // One transaction as a service writes it: upserts agents(event's
  // entity_id) and appends `event` on `topic`. With `fail_after_append` the
  // write then fails (FAILED_PRECONDITION), rolling both back.
  virtual absl::Status CommitEvent(absl::string_view topic, const v1::Event& event,
                                   bool fail_after_append = false) = 0;
  // AppendToOutbox alone, in a transaction of its own.
  virtual absl::Status Append(absl::string_view topic, const v1::Event& event) = 0;

  struct StoredRow {
    int64_t id = 0;
    OutboxRow row;
  };
  // The outbox's rows in id order, read on a connection of their own.
  virtual std::vector<StoredRow> Rows() = 0;
  virtual absl::Status DeleteAllRows() = 0;

  // A relay's store on this outbox, with a connection of its own.
  virtual std::unique_ptr<OutboxStore> NewStore() = 0;
};

}  // namespace switchboard::events
