#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/protoutil/time.h"
#include "services/sessions/attachments.h"
#include "services/sessions/model.h"
#include "services/sessions/rules.h"

namespace switchboard::sessions {

// An AttachmentBackend in memory for tests of Attachments: sessions with a
// customer and an agent, open or closed, and the records and downloads as
// written. Thread-safe.
class FakeAttachmentBackend : public AttachmentBackend {
 public:
  // An open session: its customer may upload, and its agent once set.
  void AddSession(const std::string& session_id, const std::string& customer_id,
                  const std::string& agent_id = "") {
    absl::MutexLock lock(&mu_);
    sessions_[session_id] = Session{customer_id, agent_id};
  }
  void CloseSession(const std::string& session_id, absl::Time closed_at) {
    absl::MutexLock lock(&mu_);
    sessions_[session_id].closed_at = closed_at;
  }
  // Runs inside WriteAttachment, before the write (without the lock), e.g.
  // to stand for another process's write or to hold a write up.
  void SetBeforeWrite(std::function<void(const AttachmentRecord&)> hook) {
    absl::MutexLock lock(&mu_);
    before_write_ = std::move(hook);
  }
  // Stores `record` as another process would, bypassing every check.
  void Insert(const AttachmentRecord& record) {
    absl::MutexLock lock(&mu_);
    records_[record.attachment.attachment_id()] = record;
  }

  std::optional<AttachmentRecord> record(const std::string& attachment_id) const {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(attachment_id);
    if (it == records_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<AttachmentRecord> records() const {
    absl::MutexLock lock(&mu_);
    std::vector<AttachmentRecord> out;
    for (const auto& [id, r] : records_) out.push_back(r);
    return out;
  }
  int writes() const {
    absl::MutexLock lock(&mu_);
    return writes_;
  }
  struct Downloaded {
    Caller caller;
    v1::Attachment attachment;
    bool signed_url = false;
  };
  std::vector<Downloaded> downloads() const {
    absl::MutexLock lock(&mu_);
    return downloads_;
  }

  absl::Status CheckUpload(const Caller& caller, const std::string& session_id) override {
    absl::MutexLock lock(&mu_);
    const Session* s = Find(session_id);
    if (s == nullptr || !(caller.id == s->customer_id || caller.id == s->agent_id)) {
      return NotFound();
    }
    if (s->closed_at != absl::InfiniteFuture()) {
      return absl::FailedPreconditionError("session is CLOSED: it takes no files");
    }
    return absl::OkStatus();
  }
  absl::Status CheckDownload(const Caller& caller, const std::string& session_id) override {
    absl::MutexLock lock(&mu_);
    const Session* s = Find(session_id);
    if (s == nullptr) return NotFound();
    if (caller.role == auth::Role::kSupervisor || caller.id == s->customer_id ||
        caller.id == s->agent_id) {
      return absl::OkStatus();
    }
    return NotFound();
  }

  absl::Status WriteAttachment(const AttachmentRecord& record) override {
    std::function<void(const AttachmentRecord&)> hook;
    {
      absl::MutexLock lock(&mu_);
      hook = before_write_;
    }
    if (hook) hook(record);
    absl::MutexLock lock(&mu_);
    for (const auto& [id, r] : records_) {
      if (id != record.attachment.attachment_id() &&
          r.attachment.session_id() == record.attachment.session_id() &&
          r.attachment.uploader_id() == record.attachment.uploader_id() &&
          r.upload_id == record.upload_id) {
        return absl::AlreadyExistsError("upload_id taken");
      }
    }
    records_[record.attachment.attachment_id()] = record;
    ++writes_;
    return absl::OkStatus();
  }
  absl::Status RecordDownload(const Caller& caller, const v1::Attachment& attachment,
                              bool signed_url) override {
    absl::MutexLock lock(&mu_);
    downloads_.push_back({caller, attachment, signed_url});
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<AttachmentRecord>> FindAttachment(
      const std::string& attachment_id) override {
    return record(attachment_id);
  }
  absl::StatusOr<std::optional<AttachmentRecord>> FindUpload(
      const std::string& session_id, const std::string& uploader_id,
      const std::string& upload_id) override {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, r] : records_) {
      if (r.attachment.session_id() == session_id && r.attachment.uploader_id() == uploader_id &&
          r.upload_id == upload_id) {
        return r;
      }
    }
    return std::nullopt;
  }
  absl::StatusOr<std::vector<AttachmentRecord>> PendingScans(int limit) override {
    std::vector<AttachmentRecord> out = Where([](const AttachmentRecord& r) {
      return r.attachment.state() == v1::ATTACHMENT_STATE_PENDING_SCAN;
    });
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      return UploadedAt(a) < UploadedAt(b);
    });
    if (static_cast<int>(out.size()) > limit) out.resize(limit);
    return out;
  }
  absl::StatusOr<Usage> UploadedSince(const std::string& uploader_id,
                                      absl::Time since) override {
    Usage usage;
    for (const AttachmentRecord& r : Where([&](const AttachmentRecord& r) {
           return r.attachment.uploader_id() == uploader_id && UploadedAt(r) >= since;
         })) {
      ++usage.files;
      usage.bytes += r.attachment.size_bytes();
    }
    return usage;
  }
  absl::StatusOr<std::vector<AttachmentRecord>> ExpiredAttachments(absl::Time closed_before,
                                                                   int limit) override {
    absl::MutexLock lock(&mu_);
    std::vector<AttachmentRecord> out;
    for (const auto& [id, r] : records_) {
      const Session* s = Find(r.attachment.session_id());
      if (r.attachment.state() != v1::ATTACHMENT_STATE_DELETED && s != nullptr &&
          s->closed_at < closed_before && static_cast<int>(out.size()) < limit) {
        out.push_back(r);
      }
    }
    return out;
  }
  absl::StatusOr<bool> BlobInUse(const std::string& blob_key) override {
    return !Where([&](const AttachmentRecord& r) {
              return r.blob_key == blob_key &&
                     r.attachment.state() != v1::ATTACHMENT_STATE_DELETED;
            }).empty();
  }
  absl::StatusOr<std::vector<AttachmentRecord>> ListAttachments(const std::string& after_id,
                                                                int limit) override {
    absl::MutexLock lock(&mu_);
    std::vector<AttachmentRecord> out;
    for (auto it = records_.upper_bound(after_id);
         it != records_.end() && static_cast<int>(out.size()) < limit; ++it) {
      out.push_back(it->second);
    }
    return out;
  }

 private:
  struct Session {
    std::string customer_id;
    std::string agent_id;
    absl::Time closed_at = absl::InfiniteFuture();
  };

  static absl::Time UploadedAt(const AttachmentRecord& r) {
    return protoutil::FromTimestamp(r.attachment.uploaded_at());
  }
  const Session* Find(const std::string& session_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = sessions_.find(session_id);
    return it == sessions_.end() ? nullptr : &it->second;
  }
  template <typename Pred>
  std::vector<AttachmentRecord> Where(Pred pred) const {
    absl::MutexLock lock(&mu_);
    std::vector<AttachmentRecord> out;
    for (const auto& [id, r] : records_) {
      if (pred(r)) out.push_back(r);
    }
    return out;
  }

  mutable absl::Mutex mu_;
  std::map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
  // By attachment id (ListAttachments pages in this order).
  std::map<std::string, AttachmentRecord> records_ ABSL_GUARDED_BY(mu_);
  std::vector<Downloaded> downloads_ ABSL_GUARDED_BY(mu_);
  std::function<void(const AttachmentRecord&)> before_write_ ABSL_GUARDED_BY(mu_);
  int writes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace switchboard::sessions
