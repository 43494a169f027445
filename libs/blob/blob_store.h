#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace switchboard::blob {

// The lowercase hex SHA-256 of `bytes`: the key its blob is stored under.
std::string ContentAddress(absl::string_view bytes);
// Whether `key` is a content address (64 lowercase hex digits). Stores
// refuse any other key, so a key can never name a path or object outside
// the store.
bool IsContentAddress(absl::string_view key);
// OK for a content address, else INVALID_ARGUMENT quoting the key.
absl::Status CheckContentAddress(absl::string_view key);

// Where attachment bytes live. Blobs are content-addressed and immutable:
// storing bytes that are already there is a no-op, so a retried upload, or
// the same screenshot sent twice, is stored once. Thread-safe.
class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // Stores `bytes` durably under ContentAddress(bytes) and returns that key.
  virtual absl::StatusOr<std::string> Put(absl::string_view bytes) = 0;
  // The blob's bytes; NOT_FOUND when there is none under `key`.
  virtual absl::StatusOr<std::string> Get(absl::string_view key) = 0;
  virtual absl::StatusOr<bool> Exists(absl::string_view key) = 0;
  // Removes the blob; OK when there was none.
  virtual absl::Status Delete(absl::string_view key) = 0;
  // Up to `limit` keys greater than `after`, in order: a paged walk over
  // every blob ("" starts it), for checking blobs against their records.
  virtual absl::StatusOr<std::vector<std::string>> List(absl::string_view after,
                                                        int limit) = 0;
  // A URL that fetches the blob with a plain GET until `expires_in` has
  // passed, from stores that can sign one (an object store); std::nullopt
  // from stores whose blobs only the server can read (files).
  virtual std::optional<std::string> SignedUrl(absl::string_view key,
                                               absl::Duration expires_in) = 0;
};

}  // namespace switchboard::blob
