#include "services/sessions/attachments.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/events/envelope.h"
#include "libs/filetype/strip_metadata.h"
#include "libs/log/log.h"
#include "libs/protoutil/time.h"
#include "libs/validation/validation.h"

namespace switchboard::sessions {
namespace {

constexpr size_t kMaxUploadId = 64;
constexpr size_t kMaxFileName = 255;
// Not in the API's limits, but a header is stored with its record.
constexpr size_t kMaxContentType = 255;

bool IsHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// C0 controls, DEL, and C1 controls (U+0080 to U+009F, encoded C2 80..C2 9F).
bool HasControl(absl::string_view utf8) {
  for (size_t i = 0; i < utf8.size(); ++i) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x20 || c == 0x7F) return true;
    if (c == 0xC2 && i + 1 < utf8.size() &&
        static_cast<unsigned char>(utf8[i + 1]) <= 0x9F) {
      return true;
    }
  }
  return false;
}

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("header.", field, ": ", what));
}

// The header's checks that need nothing but the header.
absl::Status ValidateHeader(const v1::UploadHeader& header, int64_t max_file_bytes) {
  if (header.session_id().empty()) return Invalid("session_id", "must not be empty");
  if (absl::Status s = validation::ValidateId("header.upload_id", header.upload_id(),
                                               kMaxUploadId);
      !s.ok()) {
    return s;
  }
  const std::string& name = header.file_name();
  if (name.empty()) return Invalid("file_name", "must not be empty");
  if (!validation::IsValidUtf8(name)) return Invalid("file_name", "must be valid UTF-8");
  if (validation::CountCodePoints(name) > kMaxFileName) {
    return Invalid("file_name", "at most 255 characters");
  }
  if (absl::StrContains(name, '/') || absl::StrContains(name, '\\')) {
    return Invalid("file_name", "must not contain '/' or '\\'");
  }
  if (HasControl(name)) return Invalid("file_name", "must not contain control characters");
  if (header.content_type().empty()) return Invalid("content_type", "must not be empty");
  if (header.content_type().size() > kMaxContentType) {
    return Invalid("content_type", "at most 255 characters");
  }
  if (header.size_bytes() < 1) return Invalid("size_bytes", "must be at least 1");
  if (header.size_bytes() > max_file_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("header.size_bytes: ", header.size_bytes(),
                                                     " bytes is over the limit of ",
                                                     max_file_bytes, " bytes per file"));
  }
  if (header.sha256().size() != 64 || !IsHex(header.sha256())) {
    return Invalid("sha256", "must be 64 hex characters");
  }
  return absl::OkStatus();
}

// What a retry must match: the header as declared, the hash in one case.
std::string Fingerprint(const v1::UploadHeader& header) {
  v1::UploadHeader copy = header;
  copy.set_sha256(absl::AsciiStrToLower(header.sha256()));
  std::string out;
  copy.SerializeToString(&out);
  return out;
}

std::string UploadKey(const Caller& caller, const v1::UploadHeader& header) {
  // upload_id has no '\n', so the key is unambiguous.
  return absl::StrCat(header.session_id(), "\n", caller.id, "\n", header.upload_id());
}

absl::Status NoSuchAttachment() {
  return absl::NotFoundError("attachment_id: no such attachment");
}

// "30 days", or the duration as absl prints it when not whole days.
std::string DurationText(absl::Duration d) {
  if (d % absl::Hours(24) == absl::ZeroDuration()) {
    return absl::StrCat(d / absl::Hours(24), " days");
  }
  return absl::FormatDuration(d);
}

}  // namespace

Attachments::Attachments(AttachmentBackend* backend, blob::BlobStore* blobs,
                         const filetype::FileTypeClassifier* classifier,
                         scan::Scanner* scanner, Clock* clock, SessionsMetrics* metrics,
                         AttachmentsOptions options)
    : backend_(backend),
      blobs_(blobs),
      classifier_(classifier),
      scanner_(scanner),
      clock_(clock),
      metrics_(metrics),
      options_(std::move(options)) {}

absl::StatusOr<Attachments::Began> Attachments::BeginUpload(const Caller& caller,
                                                            const v1::UploadHeader& header) {
  absl::StatusOr<Began> began = Check(caller, header);
  // Only an end of the upload is counted: an error, or a retry answered.
  if (!began.ok() || began->replayed.has_value()) {
    CountUpload(began.status(), began.ok());
  }
  return began;
}

absl::StatusOr<Attachments::Uploaded> Attachments::FinishUpload(const Caller& caller,
                                                                const v1::UploadHeader& header,
                                                                std::string bytes) {
  if (absl::Status s = ValidateHeader(header, options_.max_file_bytes); !s.ok()) {
    CountUpload(s, false);
    return s;
  }
  // The second of two concurrent uploads with one key waits for the first,
  // then finds it stored and answers as its retry: both clients get the
  // same attachment, and the bytes are stored once.
  const std::string key = UploadKey(caller, header);
  {
    absl::MutexLock lock(&mu_);
    while (uploads_.contains(key)) changed_.Wait(&mu_);
    uploads_.insert(key);
  }
  absl::StatusOr<Uploaded> uploaded = Store(caller, header, std::move(bytes));
  {
    absl::MutexLock lock(&mu_);
    uploads_.erase(key);
  }
  changed_.SignalAll();
  CountUpload(uploaded.status(), uploaded.ok() && uploaded->replayed);
  if (uploaded.ok() && !uploaded->replayed && metrics_ != nullptr) {
    metrics_->uploaded_bytes->Increment(static_cast<double>(uploaded->attachment.size_bytes()));
  }
  return uploaded;
}

absl::StatusOr<Attachments::Began> Attachments::Check(const Caller& caller,
                                                      const v1::UploadHeader& header) {
  if (absl::Status s = ValidateHeader(header, options_.max_file_bytes); !s.ok()) return s;
  if (absl::Status s = backend_->CheckUpload(caller, header.session_id()); !s.ok()) return s;
  absl::StatusOr<std::optional<v1::Attachment>> retry = FindRetry(caller, header);
  if (!retry.ok()) return retry.status();
  if (retry->has_value()) return Began{std::move(*retry)};
  // Uploads of one uploader running at once may each pass: the quota can be
  // overshot by those in flight, which is fine for a limit against abuse.
  absl::StatusOr<AttachmentBackend::Usage> used =
      backend_->UploadedSince(caller.id, clock_->Now() - absl::Hours(24));
  if (!used.ok()) return used.status();
  if (used->files + 1 > options_.max_files_per_day) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "daily quota: at most ", options_.max_files_per_day, " files per uploader in 24 hours"));
  }
  if (used->bytes + header.size_bytes() > options_.max_bytes_per_day) {
    return absl::ResourceExhaustedError(
        absl::StrCat("daily quota: at most ", options_.max_bytes_per_day,
                     " bytes per uploader in 24 hours (", used->bytes, " used)"));
  }
  return Began{};
}

absl::StatusOr<std::optional<v1::Attachment>> Attachments::FindRetry(
    const Caller& caller, const v1::UploadHeader& header) {
  absl::StatusOr<std::optional<AttachmentRecord>> stored =
      backend_->FindUpload(header.session_id(), caller.id, header.upload_id());
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return std::nullopt;
  if ((*stored)->fingerprint != Fingerprint(header)) {
    return absl::AlreadyExistsError(
        "header.upload_id: already used for a different file in this session");
  }
  return std::move((*stored)->attachment);
}

absl::StatusOr<Attachments::Uploaded> Attachments::Store(const Caller& caller,
                                                         const v1::UploadHeader& header,
                                                         std::string bytes) {
  // Again: the quota or the session may have changed while the bytes came.
  absl::StatusOr<Began> began = Check(caller, header);
  if (!began.ok()) return began.status();
  if (began->replayed.has_value()) return Uploaded{std::move(*began->replayed), true};

  if (static_cast<int64_t>(bytes.size()) != header.size_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat("file: ", bytes.size(),
                                                   " bytes received, header.size_bytes is ",
                                                   header.size_bytes()));
  }
  const std::string sha256 = blob::ContentAddress(bytes);
  if (sha256 != absl::AsciiStrToLower(header.sha256())) {
    return absl::InvalidArgumentError(
        absl::StrCat("file: SHA-256 is ", sha256, ", header.sha256 is ", header.sha256()));
  }
  absl::StatusOr<filetype::FileType> type = classifier_->Classify(bytes, header.content_type());
  if (!type.ok()) {
    if (absl::IsInvalidArgument(type.status())) {
      return absl::InvalidArgumentError(absl::StrCat("file: ", type.status().message()));
    }
    // libmagic could not be used: the server's fault, not the file's.
    return absl::InternalError(absl::StrCat("file type: ", type.status().message()));
  }
  absl::StatusOr<filetype::StripResult> stripped = filetype::StripMetadata(*type, bytes);
  if (!stripped.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("file: ", stripped.status().message()));
  }
  bytes.clear();

  const absl::Time now = clock_->Now();
  AttachmentRecord record;
  v1::Attachment& a = record.attachment;
  a.set_attachment_id(absl::StrCat("att-", events::RandomUuid()));
  a.set_file_name(header.file_name());
  a.set_content_type(std::string(filetype::MediaType(*type)));
  a.set_size_bytes(static_cast<int64_t>(stripped->bytes.size()));
  a.set_sha256(blob::ContentAddress(stripped->bytes));
  a.set_state(v1::ATTACHMENT_STATE_PENDING_SCAN);
  a.set_session_id(header.session_id());
  a.set_uploader_id(caller.id);
  a.set_uploader_role(caller.role == auth::Role::kCustomer ? common::v1::SENDER_ROLE_CUSTOMER
                                                           : common::v1::SENDER_ROLE_AGENT);
  protoutil::ToTimestamp(now, a.mutable_uploaded_at());
  a.set_metadata_kept_reason(stripped->kept_reason);
  record.upload_id = header.upload_id();
  record.fingerprint = Fingerprint(header);
  record.blob_key = a.sha256();
  record.updated_at = now;

  absl::Status written = PutAndWrite(stripped->bytes, record);
  if (absl::IsAlreadyExists(written)) {
    // Another process stored an upload with this key meanwhile (this one's
    // blob stays: content-addressed, possibly shared, and harmless).
    absl::StatusOr<std::optional<v1::Attachment>> retry = FindRetry(caller, header);
    if (!retry.ok()) return retry.status();
    if (retry->has_value()) return Uploaded{std::move(**retry), true};
  }
  if (!written.ok()) return written;
  return Uploaded{std::move(record.attachment), false};
}

absl::Status Attachments::PutAndWrite(absl::string_view bytes, const AttachmentRecord& record) {
  {
    absl::MutexLock lock(&mu_);
    while (blobs_deleting_.contains(record.blob_key)) changed_.Wait(&mu_);
    ++blobs_writing_[record.blob_key];
  }
  absl::Status status = blobs_->Put(bytes).status();
  if (status.ok()) status = backend_->WriteAttachment(record);
  {
    absl::MutexLock lock(&mu_);
    if (--blobs_writing_[record.blob_key] == 0) blobs_writing_.erase(record.blob_key);
  }
  changed_.SignalAll();
  return status;
}

void Attachments::CountUpload(const absl::Status& status, bool replayed) {
  if (metrics_ == nullptr) return;
  prometheus::Counter* counter = metrics_->upload_failed;
  switch (status.code()) {
    case absl::StatusCode::kOk:
      counter = replayed ? metrics_->upload_replayed : metrics_->upload_stored;
      break;
    case absl::StatusCode::kInvalidArgument:
      counter = metrics_->upload_invalid;
      break;
    case absl::StatusCode::kResourceExhausted:
      counter = metrics_->upload_over_limit;
      break;
    case absl::StatusCode::kAlreadyExists:
      counter = metrics_->upload_conflict;
      break;
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
      counter = metrics_->upload_refused;
      break;
    default:
      break;
  }
  counter->Increment();
}

absl::StatusOr<Attachments::Download> Attachments::Get(const Caller& caller,
                                                       const std::string& session_id,
                                                       const std::string& attachment_id,
                                                       bool prefer_url) {
  if (session_id.empty()) return absl::InvalidArgumentError("session_id: must not be empty");
  if (attachment_id.empty()) {
    return absl::InvalidArgumentError("attachment_id: must not be empty");
  }
  if (absl::Status s = backend_->CheckDownload(caller, session_id); !s.ok()) return s;
  absl::StatusOr<std::optional<AttachmentRecord>> found =
      backend_->FindAttachment(attachment_id);
  if (!found.ok()) return found.status();
  // Another session's attachment looks missing, so ids reveal nothing.
  if (!found->has_value() || (*found)->attachment.session_id() != session_id) {
    return NoSuchAttachment();
  }
  AttachmentRecord& record = **found;
  switch (record.attachment.state()) {
    case v1::ATTACHMENT_STATE_CLEAN:
      break;
    case v1::ATTACHMENT_STATE_PENDING_SCAN:
      return absl::FailedPreconditionError(
          "attachment is PENDING_SCAN: wait for the malware scan's verdict");
    case v1::ATTACHMENT_STATE_REJECTED:
      return absl::FailedPreconditionError(
          "attachment is REJECTED: the malware scan refused it; it is never served");
    case v1::ATTACHMENT_STATE_DELETED:
      return absl::FailedPreconditionError(
          "attachment is DELETED: removed by the retention policy");
    default:
      return absl::InternalError("attachment has no state");
  }

  Download out;
  if (prefer_url) {
    if (std::optional<std::string> url =
            blobs_->SignedUrl(record.blob_key, options_.signed_url_ttl)) {
      out.signed_url.emplace();
      out.signed_url->set_url(std::move(*url));
      protoutil::ToTimestamp(clock_->Now() + options_.signed_url_ttl,
                             out.signed_url->mutable_expires_at());
    }
  }
  if (!out.signed_url.has_value()) {
    absl::StatusOr<std::string> bytes = blobs_->Get(record.blob_key);
    if (absl::IsNotFound(bytes.status())) {
      log::Error("attachment_blob_missing", {{"attachment_id", attachment_id},
                                             {"blob_key", record.blob_key}});
      return absl::InternalError("attachment's file is missing from the blob store");
    }
    if (!bytes.ok()) return bytes.status();
    out.bytes = std::move(*bytes);
  }
  if (absl::Status s = backend_->RecordDownload(caller, record.attachment,
                                                out.signed_url.has_value());
      !s.ok()) {
    return s;
  }
  if (metrics_ != nullptr) {
    (out.signed_url.has_value() ? metrics_->download_signed_url : metrics_->download_bytes)
        ->Increment();
  }
  out.attachment = std::move(record.attachment);
  return out;
}

absl::StatusOr<int> Attachments::ScanPending() {
  absl::MutexLock background(&background_mu_);
  if (clock_->Now() < paused_until_) return 0;
  // Records waiting to be tried again come on top of a batch, so that files
  // the scanner keeps failing on never hold up newer ones.
  const int limit = kBatch + static_cast<int>(retries_.size());
  absl::StatusOr<std::vector<AttachmentRecord>> pending = backend_->PendingScans(limit);
  if (!pending.ok()) return pending.status();
  if (metrics_ != nullptr) {
    // PendingScans lists the oldest first.
    const absl::Time oldest = pending->empty() ? clock_->Now()
                                               : protoutil::FromTimestamp(
                                                     pending->front().attachment.uploaded_at());
    metrics_->scan_oldest_pending_seconds->Set(absl::ToDoubleSeconds(clock_->Now() - oldest));
  }
  if (static_cast<int>(pending->size()) < limit) {
    // Every pending record is here: forget those no longer pending.
    absl::flat_hash_set<std::string> ids;
    for (const AttachmentRecord& r : *pending) ids.insert(r.attachment.attachment_id());
    for (auto it = retries_.begin(); it != retries_.end();) {
      // flat_hash_map's erase(iterator) returns nothing: step first.
      if (ids.contains(it->first)) {
        ++it;
      } else {
        retries_.erase(it++);
      }
    }
  }
  int tried = 0;
  int verdicts = 0;
  for (AttachmentRecord& record : *pending) {
    if (tried == kBatch) break;
    const std::string id = record.attachment.attachment_id();
    auto retry = retries_.find(id);
    if (retry != retries_.end() && clock_->Now() < retry->second.next) continue;
    ++tried;
    const int failures = retry == retries_.end() ? 0 : retry->second.failures;
    absl::StatusOr<AttachmentRecord> scanned = Scan(std::move(record));
    absl::Status status = scanned.status();
    if (status.ok()) {
      scanned->scan_attempts += failures;
      status = backend_->WriteAttachment(*scanned);
    }
    if (status.ok()) {
      retries_.erase(id);
      ++verdicts;
      continue;
    }
    Retry& r = retries_[id];
    r.next = clock_->Now() + options_.scan_retry;
    ++r.failures;
    log::Warning("attachment_scan_failed",
                 {{"attachment_id", id}, {"failures", r.failures}, {"error", status.ToString()}});
    // The scanner (or the blob store) is down: one try per scan_retry
    // rather than each file waiting out scan_timeout in turn.
    if (absl::IsUnavailable(status)) {
      paused_until_ = r.next;
      break;
    }
  }
  return verdicts;
}

absl::StatusOr<AttachmentRecord> Attachments::Scan(AttachmentRecord record) {
  v1::Attachment& a = record.attachment;
  auto reject = [&](std::string reason) {
    a.set_state(v1::ATTACHMENT_STATE_REJECTED);
    a.set_rejection_reason(std::move(reason));
    record.updated_at = clock_->Now();
    if (metrics_ != nullptr) metrics_->scan_rejected->Increment();
    return record;
  };
  absl::StatusOr<std::string> bytes = blobs_->Get(record.blob_key);
  if (absl::IsNotFound(bytes.status())) {
    // It can never be scanned, nor served.
    log::Error("attachment_blob_missing", {{"attachment_id", a.attachment_id()},
                                           {"blob_key", record.blob_key}});
    return reject("could not be scanned: the file is missing from the blob store");
  }
  if (!bytes.ok()) return bytes.status();
  const absl::Time start = clock_->Now();
  absl::StatusOr<scan::ScanVerdict> verdict =
      scanner_->Scan(*bytes, start + options_.scan_timeout);
  if (metrics_ != nullptr) {
    metrics_->scan_seconds->Observe(absl::ToDoubleSeconds(clock_->Now() - start));
  }
  if (absl::IsResourceExhausted(verdict.status())) {
    // Never served unscanned.
    return reject("could not be scanned: larger than the malware scanner accepts");
  }
  if (!verdict.ok()) {
    if (metrics_ != nullptr) metrics_->scan_unavailable->Increment();
    return verdict.status();
  }
  if (verdict->infected) return reject(verdict->signature);
  a.set_state(v1::ATTACHMENT_STATE_CLEAN);
  record.updated_at = clock_->Now();
  if (metrics_ != nullptr) metrics_->scan_clean->Increment();
  return record;
}

absl::StatusOr<int> Attachments::ApplyRetention() {
  if (options_.retention <= absl::ZeroDuration()) return 0;
  absl::MutexLock background(&background_mu_);
  absl::StatusOr<std::vector<AttachmentRecord>> expired =
      backend_->ExpiredAttachments(clock_->Now() - options_.retention, kBatch);
  if (!expired.ok()) return expired.status();
  const std::string reason = absl::StrCat("retention: session closed more than ",
                                          DurationText(options_.retention), " ago");
  int deleted = 0;
  for (AttachmentRecord& record : *expired) {
    // The record first: a crash in between leaves a blob nobody serves,
    // never a servable record without its blob.
    record.attachment.set_state(v1::ATTACHMENT_STATE_DELETED);
    record.attachment.set_rejection_reason(reason);
    record.updated_at = clock_->Now();
    if (absl::Status s = backend_->WriteAttachment(record); !s.ok()) return s;
    ++deleted;
    if (metrics_ != nullptr) metrics_->attachments_deleted->Increment();
    {
      absl::MutexLock lock(&mu_);
      // An upload is storing the same bytes: they stay for its record.
      if (blobs_writing_.contains(record.blob_key)) continue;
      blobs_deleting_.insert(record.blob_key);
    }
    absl::StatusOr<bool> in_use = backend_->BlobInUse(record.blob_key);
    absl::Status status = in_use.status();
    if (in_use.ok() && !*in_use) status = blobs_->Delete(record.blob_key);
    {
      absl::MutexLock lock(&mu_);
      blobs_deleting_.erase(record.blob_key);
    }
    changed_.SignalAll();
    if (!status.ok()) return status;
  }
  return deleted;
}

absl::StatusOr<std::vector<std::string>> Attachments::CheckBlobs() {
  absl::MutexLock background(&background_mu_);
  std::vector<std::string> missing;
  std::string after;
  while (true) {
    absl::StatusOr<std::vector<AttachmentRecord>> page =
        backend_->ListAttachments(after, kBatch);
    if (!page.ok()) return page.status();
    for (const AttachmentRecord& record : *page) {
      if (record.attachment.state() == v1::ATTACHMENT_STATE_DELETED) continue;
      absl::StatusOr<bool> exists = blobs_->Exists(record.blob_key);
      if (!exists.ok()) return exists.status();
      if (*exists) continue;
      log::Error("attachment_blob_missing",
                 {{"attachment_id", record.attachment.attachment_id()},
                  {"blob_key", record.blob_key},
                  {"state", v1::AttachmentState_Name(record.attachment.state())}});
      missing.push_back(record.attachment.attachment_id());
    }
    if (static_cast<int>(page->size()) < kBatch) return missing;
    after = page->back().attachment.attachment_id();
  }
}

}  // namespace switchboard::sessions
