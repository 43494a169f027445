// Fuzzes the feedback logic (Feedback) the way FeedbackService drives it:
// each input is a sequence of calls (feedback_fuzz.proto) against a fresh
// SQLite store in a temporary folder, a fake clock, and sessions and routing
// in memory. Sessions "s-0" to "s-5" exist: resolved or not, closed or
// not, for customers cust-0 to cust-2, handled by agent-0 or agent-1 or by
// the bot alone.
//
// Beyond "no crash, no leak, no undefined behaviour", it checks that bad
// input gets a client error (never INTERNAL or UNKNOWN), and that a restart
// (a new Feedback over the same file) shows every complaint and rating as
// before.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/message_differencer.h"
#include "libs/clock/clock.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/test_dir.h"
#include "prometheus/registry.h"
#include "services/feedback/feedback.h"
#include "services/feedback/fuzz/feedback_fuzz.pb.h"
#include "services/feedback/sqlite_store.h"
#include "third_party/fuzzing/calls.h"

namespace switchboard::feedback {
namespace {

using fuzzing::Check;
using fuzzing::CheckServed;

constexpr size_t kMaxCalls = 48;

class FakeSessions : public SessionsPort {
 public:
  explicit FakeSessions(absl::Time now) {
    for (int i = 0; i < 6; ++i) {
      SessionInfo s;
      s.session_id = absl::StrCat("s-", i);
      s.customer_id = absl::StrCat("cust-", i % 3);
      s.channel = i % 2 ? common::v1::CHANNEL_EMAIL : common::v1::CHANNEL_CHAT;
      s.category = static_cast<common::v1::Category>(1 + i % 4);
      s.resolved = i != 5;
      s.open_resolved = i % 2 == 0 && s.resolved;
      if (s.resolved) s.resolved_at = now - absl::Hours(i);
      s.agent_id = i == 4 ? "" : absl::StrCat("agent-", i % 2);
      sessions_[s.session_id] = s;
    }
  }
  absl::StatusOr<SessionInfo> GetSession(const std::string& id, absl::Time) override {
    absl::MutexLock lock(&mu_);
    if (down_) return absl::UnavailableError("sessions down");
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return absl::NotFoundError("no such session");
    return it->second;
  }
  absl::Status CloseRated(const std::string& id, absl::Time) override {
    absl::MutexLock lock(&mu_);
    if (down_) return absl::UnavailableError("sessions down");
    if (auto it = sessions_.find(id); it != sessions_.end()) it->second.open_resolved = false;
    return absl::OkStatus();
  }
  void set_down(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, SessionInfo> sessions_ ABSL_GUARDED_BY(mu_);
  bool down_ ABSL_GUARDED_BY(mu_) = false;
};

class FakeRouting : public RoutingPort {
 public:
  absl::Status EnqueueComplaint(const v1::Complaint&) override { return Answer(); }
  absl::Status CancelComplaint(const std::string&) override { return Answer(); }
  void set_down(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }

 private:
  absl::Status Answer() {
    absl::MutexLock lock(&mu_);
    return down_ ? absl::UnavailableError("routing down") : absl::OkStatus();
  }
  absl::Mutex mu_;
  bool down_ ABSL_GUARDED_BY(mu_) = false;
};

class Harness {
 public:
  Harness()
      : path_(storage::MakeTempDir() + "/feedback.db"),
        metrics_(registry_),
        sessions_(clock_.Now()) {
    Open();
  }
  ~Harness() {
    Close();
    std::filesystem::remove_all(std::filesystem::path(path_).parent_path());
  }

  void Run(const fuzz::Call& call) {
    clock_.Advance(absl::Seconds(std::min<uint32_t>(call.advance_seconds(), 7 * 24 * 3600)));
    sessions_.set_down(call.sessions_down());
    routing_.set_down(call.routing_down());
    static constexpr const char* kPrefix[] = {"cust-", "agent-", "sup-", "svc-"};
    static constexpr auth::Role kRole[] = {auth::Role::kCustomer, auth::Role::kAgent,
                                           auth::Role::kSupervisor, auth::Role::kService};
    const int role = call.role() >= 0 && call.role() <= 3 ? call.role() : 0;
    const Caller caller{kRole[role], absl::StrCat(kPrefix[role], call.caller() % 3)};
    const absl::Time deadline = absl::InfiniteFuture();
    auto complaint_id = [&](const std::string& id) {
      return call.has_complaint() && !complaints_.empty()
                 ? complaints_[call.complaint() % complaints_.size()]
                 : id;
    };
    // The roles FeedbackService lets through for each call.
    auto allowed = [&](std::initializer_list<auth::Role> roles) {
      return std::find(roles.begin(), roles.end(), caller.role) != roles.end();
    };
    using R = auth::Role;
    switch (call.request_case()) {
      case fuzz::Call::kSubmitFeedback: {
        if (!allowed({R::kCustomer})) break;
        auto submitted = feedback_->SubmitFeedback(caller, call.submit_feedback(), deadline);
        CheckServed(submitted.status(), "SubmitFeedback");
        if (submitted.ok()) rated_.push_back(submitted->feedback().session_id());
        break;
      }
      case fuzz::Call::kGetFeedback:
        CheckServed(feedback_->GetFeedback(caller, call.get_feedback()).status(), "GetFeedback");
        break;
      case fuzz::Call::kListFeedback:
        CheckServed(feedback_->ListFeedback(caller, call.list_feedback()).status(),
                    "ListFeedback");
        break;
      case fuzz::Call::kFileComplaint: {
        if (!allowed({R::kCustomer, R::kSupervisor, R::kService})) break;
        auto filed = feedback_->FileComplaint(caller, call.file_complaint(), deadline);
        CheckServed(filed.status(), "FileComplaint");
        if (filed.ok()) complaints_.push_back(filed->complaint().complaint_id());
        break;
      }
      case fuzz::Call::kUpdateComplaint: {
        if (!allowed({R::kSupervisor})) break;
        v1::UpdateComplaintRequest r = call.update_complaint();
        r.set_complaint_id(complaint_id(r.complaint_id()));
        CheckServed(feedback_->UpdateComplaint(caller, r).status(), "UpdateComplaint");
        break;
      }
      case fuzz::Call::kGetComplaint: {
        if (!allowed({R::kCustomer, R::kSupervisor, R::kService})) break;
        v1::GetComplaintRequest r = call.get_complaint();
        r.set_complaint_id(complaint_id(r.complaint_id()));
        CheckServed(feedback_->GetComplaint(caller, r).status(), "GetComplaint");
        break;
      }
      case fuzz::Call::kListComplaints:
        if (!allowed({R::kCustomer, R::kSupervisor, R::kService})) break;
        CheckServed(feedback_->ListComplaints(caller, call.list_complaints()).status(),
                    "ListComplaints");
        break;
      case fuzz::Call::kGetSummary:
        if (!allowed({R::kAgent, R::kSupervisor, R::kService})) break;
        CheckServed(feedback_->GetSummary(caller, call.get_summary()).status(), "GetSummary");
        break;
      case fuzz::Call::kSyncRouting:
        CheckServed(feedback_->SyncRouting().status(), "SyncRouting");
        break;
      case fuzz::Call::REQUEST_NOT_SET:
        break;
    }
  }

  // A restart shows every complaint and rating as it was.
  void Finish() {
    sessions_.set_down(false);
    routing_.set_down(false);
    const Caller supervisor{auth::Role::kSupervisor, "sup-0"};
    std::vector<v1::Complaint> complaints;
    for (const std::string& id : complaints_) {
      v1::GetComplaintRequest r;
      r.set_complaint_id(id);
      auto got = feedback_->GetComplaint(supervisor, r);
      Check(got.ok(), absl::StrCat("complaint ", id, " is gone"));
      complaints.push_back(got->complaint());
    }
    std::vector<v1::Feedback> ratings;
    for (const std::string& session : rated_) {
      v1::GetFeedbackRequest r;
      r.set_session_id(session);
      auto got = feedback_->GetFeedback(supervisor, r);
      Check(got.ok(), absl::StrCat("rating of ", session, " is gone"));
      ratings.push_back(got->feedback());
    }
    Close();
    Open();
    for (const v1::Complaint& before : complaints) {
      v1::GetComplaintRequest r;
      r.set_complaint_id(before.complaint_id());
      auto after = feedback_->GetComplaint(supervisor, r);
      Check(after.ok() &&
                google::protobuf::util::MessageDifferencer::Equals(before, after->complaint()),
            absl::StrCat("complaint ", before.complaint_id(), " differs after a restart"));
    }
    for (const v1::Feedback& before : ratings) {
      v1::GetFeedbackRequest r;
      r.set_session_id(before.session_id());
      auto after = feedback_->GetFeedback(supervisor, r);
      Check(after.ok() &&
                google::protobuf::util::MessageDifferencer::Equals(before, after->feedback()),
            absl::StrCat("rating of ", before.session_id(), " differs after a restart"));
    }
  }

 private:
  void Open() {
    db_ = *storage::Database::OpenMigrated({path_}, FeedbackMigrations());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqliteFeedbackStore>(committer_.get(), path_,
                                                   "switchboard.feedback.v1", nullptr);
    feedback_ = std::make_unique<Feedback>(store_.get(), &sessions_, &routing_, &clock_,
                                           &metrics_, FeedbackOptions());
    CheckServed(feedback_->Load(), "Load");
  }

  void Close() {
    feedback_.reset();
    committer_->Stop();
    store_.reset();
    committer_.reset();
    db_.reset();
  }

  const std::string path_;
  prometheus::Registry registry_;
  FeedbackMetrics metrics_;
  FakeClock clock_;
  FakeSessions sessions_;
  FakeRouting routing_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteFeedbackStore> store_;
  std::unique_ptr<Feedback> feedback_;
  std::vector<std::string> complaints_;
  std::vector<std::string> rated_;
};

}  // namespace
}  // namespace switchboard::feedback

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using switchboard::feedback::fuzz::Call;
  const std::vector<Call> calls =
      switchboard::fuzzing::ReadCalls<Call>(data, size, switchboard::feedback::kMaxCalls);
  if (calls.empty()) return 0;
  switchboard::feedback::Harness harness;
  for (const Call& call : calls) harness.Run(call);
  harness.Finish();
  return 0;
}
