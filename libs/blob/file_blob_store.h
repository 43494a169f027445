#pragma once

#include <memory>
#include <string>

#include "libs/blob/blob_store.h"

namespace switchboard::blob {

// Blobs as files under a folder (the embedded default: the service's data
// folder), `<root>/<first two hex digits>/<key>`, so no directory holds more
// than 1/256 of them. A Put writes a temporary file in `<root>/.incoming`,
// fsyncs it, renames it into place and fsyncs the directory: a crash leaves
// either the whole blob or none (leftover temporary files are removed at
// Open).
class FileBlobStore : public BlobStore {
 public:
  // Creates `root` if needed.
  static absl::StatusOr<std::unique_ptr<FileBlobStore>> Open(const std::string& root);

  absl::StatusOr<std::string> Put(absl::string_view bytes) override;
  absl::StatusOr<std::string> Get(absl::string_view key) override;
  absl::StatusOr<bool> Exists(absl::string_view key) override;
  absl::Status Delete(absl::string_view key) override;
  absl::StatusOr<std::vector<std::string>> List(absl::string_view after, int limit) override;
  std::optional<std::string> SignedUrl(absl::string_view key,
                                       absl::Duration expires_in) override;

 private:
  explicit FileBlobStore(std::string root) : root_(std::move(root)) {}
  std::string PathOf(absl::string_view key) const;

  const std::string root_;
};

}  // namespace switchboard::blob
