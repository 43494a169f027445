#include "services/sessions/attachment_reactors.h"

#include <optional>
#include <string>
#include <utility>

#include <grpcpp/alarm.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/server/status.h"

namespace switchboard::sessions {
namespace {

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

// Counts the reactor's own work that may still touch it (pool tasks, the
// alarm): the reactor deletes itself when gRPC is done and none is left.
class SelfDeleting {
 protected:
  virtual ~SelfDeleting() = default;

  // Runs `task` on `pool`, holding the reactor; false if the pool refused.
  template <typename Task>
  bool RunTaskLocked(server::BlockingPool& pool, Task task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++tasks_;
    if (pool.Run([this, task = std::move(task)]() mutable {
          task();
          Release();
        })) {
      return true;
    }
    --tasks_;
    return false;
  }
  void HoldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { ++tasks_; }
  void Release() {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      last = --tasks_ == 0 && done_;
    }
    if (last) delete this;
  }
  // From OnDone.
  void Done() {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      last = tasks_ == 0;
    }
    if (last) delete this;
  }

  absl::Mutex mu_;

 private:
  int tasks_ ABSL_GUARDED_BY(mu_) = 0;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

class UploadReactor final : public grpc::ServerReadReactor<v1::UploadAttachmentRequest>,
                            private SelfDeleting {
 public:
  UploadReactor(Attachments* attachments, server::BlockingPool* pool, Caller caller,
                v1::UploadAttachmentResponse* response, absl::Duration time_limit,
                std::shared_ptr<void> permit)
      : attachments_(attachments),
        pool_(pool),
        caller_(std::move(caller)),
        response_(response),
        time_limit_(time_limit),
        permit_(std::move(permit)) {}

  void Start() {
    absl::MutexLock lock(&mu_);
    HoldLocked();  // until the alarm has run, fired or cancelled
    alarm_.Set(absl::ToChronoTime(absl::Now() + time_limit_), [this](bool fired) {
      if (fired) {
        absl::MutexLock lock(&mu_);
        FinishLocked(grpc::Status(
            grpc::StatusCode::DEADLINE_EXCEEDED,
            absl::StrCat("the upload took longer than ", absl::FormatDuration(time_limit_))));
      }
      Release();
    });
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (!ok) {
      // The client closed its side (every chunk is in), or went away.
      if (cancelled_) return;
      if (!header_) {
        FinishLocked(Invalid("header: the first request must carry the header"));
        return;
      }
      RunLocked([this] { Complete(); });
      return;
    }
    switch (request_.kind_case()) {
      case v1::UploadAttachmentRequest::kHeader:
        if (header_) {
          FinishLocked(Invalid("header: only the first request carries it"));
          return;
        }
        header_ = std::move(*request_.mutable_header());
        RunLocked([this] { Begin(); });
        return;
      case v1::UploadAttachmentRequest::kChunk: {
        if (!header_) {
          FinishLocked(Invalid("chunk: the header must come first"));
          return;
        }
        const std::string& chunk = request_.chunk();
        if (chunk.size() > kUploadChunkBytes) {
          FinishLocked(Invalid(absl::StrCat("chunk: at most ", kUploadChunkBytes,
                                            " bytes per request")));
          return;
        }
        if (static_cast<int64_t>(bytes_.size() + chunk.size()) > header_->size_bytes()) {
          FinishLocked(Invalid(absl::StrCat("chunk: more bytes than header.size_bytes (",
                                            header_->size_bytes(), ")")));
          return;
        }
        bytes_.append(chunk);
        StartRead(&request_);
        return;
      }
      default:
        FinishLocked(Invalid("request: set header or chunk"));
    }
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    alarm_.Cancel();
    permit_.reset();
    Done();
  }

 private:
  template <typename Task>
  void RunLocked(Task task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!RunTaskLocked(*pool_, std::move(task))) {
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    }
  }

  // On the pool, once the header arrived.
  void Begin() {
    v1::UploadHeader header;
    {
      absl::MutexLock lock(&mu_);
      header = *header_;
    }
    absl::StatusOr<Attachments::Began> began = attachments_->BeginUpload(caller_, header);
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (!began.ok()) {
      FinishLocked(server::ToGrpcStatus(began.status()));
    } else if (began->replayed) {
      *response_->mutable_attachment() = *began->replayed;
      response_->set_replayed(true);
      FinishLocked(grpc::Status::OK);
    } else {
      bytes_.reserve(static_cast<size_t>(header.size_bytes()));
      StartRead(&request_);
    }
  }

  // On the pool, once the client sent everything.
  void Complete() {
    v1::UploadHeader header;
    std::string bytes;
    {
      absl::MutexLock lock(&mu_);
      header = *header_;
      bytes.swap(bytes_);
    }
    absl::StatusOr<Attachments::Uploaded> uploaded =
        attachments_->FinishUpload(caller_, header, std::move(bytes));
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (!uploaded.ok()) {
      FinishLocked(server::ToGrpcStatus(uploaded.status()));
      return;
    }
    *response_->mutable_attachment() = std::move(uploaded->attachment);
    response_->set_replayed(uploaded->replayed);
    FinishLocked(grpc::Status::OK);
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    bytes_.clear();
    bytes_.shrink_to_fit();
    Finish(status);
  }

  Attachments* const attachments_;
  server::BlockingPool* const pool_;
  const Caller caller_;
  v1::UploadAttachmentResponse* const response_;
  const absl::Duration time_limit_;
  std::shared_ptr<void> permit_;
  grpc::Alarm alarm_;
  v1::UploadAttachmentRequest request_;
  std::optional<v1::UploadHeader> header_ ABSL_GUARDED_BY(mu_);
  std::string bytes_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

class DownloadReactor final
    : public grpc::ServerWriteReactor<v1::DownloadAttachmentResponse>,
      private SelfDeleting {
 public:
  DownloadReactor(Attachments* attachments, server::BlockingPool* pool, Caller caller,
                  v1::DownloadAttachmentRequest request, std::shared_ptr<void> permit)
      : attachments_(attachments),
        pool_(pool),
        caller_(std::move(caller)),
        request_(std::move(request)),
        permit_(std::move(permit)) {}

  void Start() {
    absl::MutexLock lock(&mu_);
    if (!RunTaskLocked(*pool_, [this] { Fetch(); })) {
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    permit_.reset();
    Done();
  }

 private:
  // On the pool.
  void Fetch() {
    absl::StatusOr<Attachments::Download> download = attachments_->Get(
        caller_, request_.session_id(), request_.attachment_id(), request_.prefer_url());
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (!download.ok()) {
      FinishLocked(server::ToGrpcStatus(download.status()));
      return;
    }
    download_ = std::move(*download);
    *current_.mutable_attachment() = download_.attachment;
    StartWrite(&current_);
  }

  // The signed URL, or the next chunk, or the end.
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    if (download_.signed_url) {
      if (url_sent_) {
        FinishLocked(grpc::Status::OK);
        return;
      }
      url_sent_ = true;
      *current_.mutable_signed_url() = *download_.signed_url;
      StartWrite(&current_);
      return;
    }
    if (offset_ >= download_.bytes.size()) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    const size_t size = std::min(kDownloadChunkBytes, download_.bytes.size() - offset_);
    current_.set_chunk(download_.bytes.substr(offset_, size));
    offset_ += size;
    StartWrite(&current_);
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  Attachments* const attachments_;
  server::BlockingPool* const pool_;
  const Caller caller_;
  const v1::DownloadAttachmentRequest request_;
  std::shared_ptr<void> permit_;
  Attachments::Download download_ ABSL_GUARDED_BY(mu_);
  // The response being written.
  v1::DownloadAttachmentResponse current_ ABSL_GUARDED_BY(mu_);
  size_t offset_ ABSL_GUARDED_BY(mu_) = 0;
  bool url_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// Ends its call with a status given at the start.
template <typename Reactor>
class Refused final : public Reactor {
 public:
  explicit Refused(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerReadReactor<v1::UploadAttachmentRequest>* RefusedUpload(const grpc::Status& status) {
  return new Refused<grpc::ServerReadReactor<v1::UploadAttachmentRequest>>(status);
}

grpc::ServerWriteReactor<v1::DownloadAttachmentResponse>* RefusedDownload(
    const grpc::Status& status) {
  return new Refused<grpc::ServerWriteReactor<v1::DownloadAttachmentResponse>>(status);
}

grpc::ServerReadReactor<v1::UploadAttachmentRequest>* StartUpload(
    Attachments* attachments, server::BlockingPool* pool, Caller caller,
    v1::UploadAttachmentResponse* response, absl::Duration time_limit,
    std::shared_ptr<void> permit) {
  auto* reactor = new UploadReactor(attachments, pool, std::move(caller), response,
                                    time_limit, std::move(permit));
  reactor->Start();
  return reactor;
}

grpc::ServerWriteReactor<v1::DownloadAttachmentResponse>* StartDownload(
    Attachments* attachments, server::BlockingPool* pool, Caller caller,
    const v1::DownloadAttachmentRequest& request, std::shared_ptr<void> permit) {
  auto* reactor =
      new DownloadReactor(attachments, pool, std::move(caller), request, std::move(permit));
  reactor->Start();
  return reactor;
}

}  // namespace switchboard::sessions
