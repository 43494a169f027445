#include "services/sessions/attachments_wiring.h"

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/blob/file_blob_store.h"
#include "libs/blob/s3_blob_store.h"
#include "libs/filetype/file_type.h"
#include "libs/log/log.h"
#include "libs/scan/clamd_client.h"

namespace switchboard::sessions {
namespace {

absl::StatusOr<std::string> ReadSecret(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(text.str()));
}

absl::StatusOr<blob::BlobStore*> MakeBlobStore(host::Host& host, const ServerConfig& config) {
  if (config.blob_store == "files") {
    absl::StatusOr<std::unique_ptr<blob::FileBlobStore>> files =
        blob::FileBlobStore::Open(host.data_dir() + "/attachments");
    if (!files.ok()) return files.status();
    return &host.Make<std::unique_ptr<blob::FileBlobStore>>(*std::move(files)).operator*();
  }
  absl::StatusOr<std::string> secret = ReadSecret(config.s3_secret_access_key_file);
  if (!secret.ok()) return secret.status();
  blob::S3BlobStore::Options options;
  options.endpoint = config.blob_store;
  options.bucket = config.s3_bucket;
  options.region = config.s3_region;
  options.access_key_id = config.s3_access_key_id;
  options.secret_access_key = *secret;
  absl::StatusOr<std::unique_ptr<blob::S3BlobStore>> s3 =
      blob::S3BlobStore::Create(std::move(options));
  if (!s3.ok()) return s3.status();
  return &host.Make<std::unique_ptr<blob::S3BlobStore>>(*std::move(s3)).operator*();
}

absl::StatusOr<Attachments*> Make(host::Host& host, const ServerConfig& config,
                                  Sessions* sessions, SessionsMetrics* metrics) {
  absl::StatusOr<blob::BlobStore*> blobs = MakeBlobStore(host, config);
  if (!blobs.ok()) return blobs.status();
  absl::StatusOr<std::unique_ptr<filetype::FileTypeClassifier>> classifier =
      filetype::FileTypeClassifier::Create();
  if (!classifier.ok()) return classifier.status();
  absl::StatusOr<std::unique_ptr<scan::ClamdClient>> clamd =
      scan::ClamdClient::Create({config.clamd_address});
  if (!clamd.ok()) return clamd.status();
  auto& attachments = host.Make<Attachments>(
      sessions, *blobs,
      host.Make<std::unique_ptr<filetype::FileTypeClassifier>>(*std::move(classifier)).get(),
      host.Make<std::unique_ptr<scan::ClamdClient>>(*std::move(clamd)).get(), RealClock(),
      metrics, config.attachments);
  absl::StatusOr<std::vector<std::string>> missing = attachments.CheckBlobs();
  if (!missing.ok()) return missing.status();
  if (!missing->empty()) {
    log::Error("attachment_blobs_missing", {{"count", std::to_string(missing->size())},
                                            {"first", missing->front()}});
  }
  host.Every(config.scan_interval, [&attachments] {
    if (absl::StatusOr<int> scanned = attachments.ScanPending(); !scanned.ok()) {
      log::Warning("attachment_scan_failed", {{"error", scanned.status().ToString()}});
    }
  });
  if (config.attachments.retention > absl::ZeroDuration()) {
    host.Every(config.retention_interval, [&attachments] {
      absl::StatusOr<int> deleted;
      do {
        deleted = attachments.ApplyRetention();
      } while (deleted.ok() && *deleted == Attachments::kBatch);
      if (!deleted.ok()) {
        log::Warning("attachment_retention_failed", {{"error", deleted.status().ToString()}});
      }
    });
  }
  return &attachments;
}

}  // namespace

std::optional<int> MakeAttachments(host::Host& host, const ServerConfig& config,
                                   Sessions* sessions, SessionsMetrics* metrics,
                                   Attachments** attachments) {
  absl::StatusOr<Attachments*> made = Make(host, config, sessions, metrics);
  if (!made.ok()) return host.Fail("attachments", made.status());
  *attachments = *made;
  return std::nullopt;
}

}  // namespace switchboard::sessions
