#include "tools/cli/streams.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace switchboard::cli {

bool Retriable(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
      return true;
    default:
      return false;
  }
}

SessionFollower::SessionFollower(const Clients& clients, std::string token,
                                 std::string session_id, int64_t after_sequence,
                                 OnResponse on_response, OnNotice on_notice)
    : clients_(clients),
      token_(std::move(token)),
      session_id_(std::move(session_id)),
      on_response_(std::move(on_response)),
      on_notice_(std::move(on_notice)),
      last_sequence_(after_sequence) {
  thread_ = std::thread([this] { Run(); });
}

SessionFollower::~SessionFollower() { Stop(); }

void SessionFollower::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status SessionFollower::status() {
  absl::MutexLock lock(&mu_);
  return status_;
}

void SessionFollower::Run() {
  absl::Duration backoff = absl::Milliseconds(250);
  while (!stop_) {
    std::unique_ptr<grpc::ClientContext> context = clients_.StreamContext(token_);
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
      context_ = context.get();
    }
    sessions::v1::StreamSessionEventsRequest request;
    request.set_session_id(session_id_);
    request.set_after_sequence(last_sequence_);
    auto reader = clients_.sessions->StreamSessionEvents(context.get(), request);
    sessions::v1::StreamSessionEventsResponse response;
    bool received = false;
    while (reader->Read(&response)) {
      received = true;
      if (response.has_event()) {
        // A resumed stream starts after last_sequence_; never show one twice.
        if (response.event().sequence() <= last_sequence_) continue;
        last_sequence_ = response.event().sequence();
      }
      on_response_(response);
    }
    grpc::Status status = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      context_ = nullptr;
      if (stop_) break;
      if (!Retriable(status)) {
        status_ = FromGrpc(status);
        ended_ = true;
        break;
      }
    }
    if (received) backoff = absl::Milliseconds(250);
    on_notice_(absl::StrCat("stream interrupted (", status.error_message(),
                            "); reconnecting after #", last_sequence_.load()));
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

}  // namespace switchboard::cli
