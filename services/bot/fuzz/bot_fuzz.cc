// Fuzzes the bot (Bot) the way BotService drives it: each input is a
// sequence of calls (bot_fuzz.proto) against a fresh bot over the
// repository's knowledge base (trained once per process), its event log on
// a fresh SQLite store in a temporary folder, and a fake clock. The
// adapter's checks of ListIntents and ResetDialogue are applied as the
// service applies them.
//
// Beyond "no crash, no leak, no undefined behaviour", it checks that bad
// input gets a client error (never INTERNAL or UNKNOWN), that every answer
// keeps the response's documented limits (a reply of at most 4,000
// characters, at most 6 quick replies and 3 guesses, an answered intent that
// exists), and that a retried turn gets its first answer back.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/util/message_differencer.h"
#include "libs/clock/clock.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/test_dir.h"
#include "libs/validation/validation.h"
#include "prometheus/registry.h"
#include "services/bot/bot.h"
#include "services/bot/default_knowledge_base.h"
#include "services/bot/fuzz/bot_fuzz.pb.h"
#include "services/bot/sqlite_event_log.h"
#include "third_party/fuzzing/calls.h"

namespace switchboard::bot {
namespace {

using fuzzing::Check;
using fuzzing::CheckServed;

constexpr size_t kMaxCalls = 32;

std::shared_ptr<const KnowledgeBase> Base() {
  static const auto* kb = new std::shared_ptr<const KnowledgeBase>([] {
    absl::StatusOr<std::shared_ptr<const KnowledgeBase>> parsed =
        ParseKnowledgeBase(kDefaultKnowledgeBaseName, DefaultKnowledgeBase());
    Check(parsed.ok(), "the repository's knowledge base does not load");
    return *parsed;
  }());
  return *kb;
}

class Harness {
 public:
  Harness() : path_(storage::MakeTempDir() + "/bot.db"), metrics_(registry_) {
    db_ = *storage::Database::OpenMigrated({path_}, BotMigrations());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    events_ = std::make_unique<SqliteEventLog>(committer_.get(), "switchboard.bot.v1", nullptr);
    bot_ = std::make_unique<Bot>("", events_.get(), &clock_, &metrics_, BotOptions());
    bot_->UseKnowledgeBase(Base());
  }
  ~Harness() {
    bot_.reset();
    committer_->Stop();
    events_.reset();
    committer_.reset();
    db_.reset();
    std::filesystem::remove_all(std::filesystem::path(path_).parent_path());
  }

  void Run(const fuzz::Call& call) {
    clock_.Advance(absl::Seconds(std::min<uint32_t>(call.advance_seconds(), 24 * 3600)));
    switch (call.request_case()) {
      case fuzz::Call::kAnswer: {
        v1::AnswerResponse first;
        const absl::Status status = Answer(call.answer(), &first);
        CheckServed(status, "Answer");
        if (!status.ok()) break;
        CheckAnswer(first);
        if (call.retry()) {
          v1::AnswerResponse again;
          CheckServed(Answer(call.answer(), &again), "Answer (retry)");
          Check(again.replayed(), "a retried turn was answered again");
          // The first call may itself repeat a turn of an earlier call.
          first.set_replayed(false);
          again.set_replayed(false);
          std::string diff;
          google::protobuf::util::MessageDifferencer differ;
          differ.ReportDifferencesToString(&diff);
          Check(differ.Compare(first, again), absl::StrCat("a retry got another answer: ", diff));
        }
        break;
      }
      case fuzz::Call::kListIntents: {
        const v1::ListIntentsRequest& r = call.list_intents();
        // BotService::ListIntents' own checks.
        if (!common::v1::Category_IsValid(r.category()) || r.page_size() < 0 ||
            r.page_size() > 500) {
          break;
        }
        std::string after;
        if (!r.page_token().empty() &&
            (!absl::WebSafeBase64Unescape(r.page_token(), &after) ||
             !absl::StartsWith(after, "intents:"))) {
          break;
        }
        if (!after.empty()) after = after.substr(sizeof("intents:") - 1);
        auto page = bot_->ListIntents(r.category(), r.query(), r.language(),
                                      r.page_size() == 0 ? 100 : r.page_size(), after);
        CheckServed(page.status(), "ListIntents");
        break;
      }
      case fuzz::Call::kResetDialogue:
        if (validation::ValidateId("session_id", call.reset_dialogue().session_id(), 128).ok()) {
          CheckServed(bot_->ResetDialogue(call.reset_dialogue().session_id()).status(),
                      "ResetDialogue");
        }
        break;
      case fuzz::Call::kExpireDialogues:
        CheckServed(bot_->ExpireDialogues().status(), "ExpireDialogues");
        break;
      case fuzz::Call::REQUEST_NOT_SET:
        break;
    }
  }

 private:
  absl::Status Answer(const v1::AnswerRequest& request, v1::AnswerResponse* response) {
    absl::Notification done;
    absl::Status status;
    bot_->Answer(request, response, [&](absl::Status s) {
      status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    return status;
  }

  void CheckAnswer(const v1::AnswerResponse& r) {
    Check(v1::AnswerOutcome_IsValid(r.outcome()) &&
              r.outcome() != v1::ANSWER_OUTCOME_UNSPECIFIED,
          "an answer without an outcome");
    Check(!r.reply_text().empty() && validation::CountCodePoints(r.reply_text()) <= 4000,
          absl::StrCat("reply of ", r.reply_text().size(), " bytes"));
    Check(r.reply_language() == "en" || r.reply_language() == "zh-CN",
          absl::StrCat("reply language \"", r.reply_language(), "\""));
    Check(r.quick_replies_size() <= 6, "more than 6 quick replies");
    Check(r.intent_guesses_size() <= 3, "more than 3 guesses");
    if (r.outcome() == v1::ANSWER_OUTCOME_ANSWERED) {
      Check(Base()->Find(r.answered_intent_id()) != nullptr,
            absl::StrCat("answered with unknown intent \"", r.answered_intent_id(), "\""));
    } else {
      Check(r.answered_intent_id().empty(), "an intent id on an answer that is not ANSWERED");
    }
  }

  const std::string path_;
  prometheus::Registry registry_;
  BotMetrics metrics_;
  FakeClock clock_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteEventLog> events_;
  std::unique_ptr<Bot> bot_;
};

}  // namespace
}  // namespace switchboard::bot

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  switchboard::bot::Base();  // trains once, before the clock of the first input
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using switchboard::bot::fuzz::Call;
  const std::vector<Call> calls =
      switchboard::fuzzing::ReadCalls<Call>(data, size, switchboard::bot::kMaxCalls);
  if (calls.empty()) return 0;
  switchboard::bot::Harness harness;
  for (const Call& call : calls) harness.Run(call);
  return 0;
}
