#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "services/bot/dialogues.h"
#include "services/bot/event_log.h"
#include "services/bot/knowledge_base.h"
#include "services/bot/metrics.h"
#include "services/bot/ranker.h"
#include "services/bot/safety.h"
#include "switchboard/bot/v1/bot_service.pb.h"

namespace switchboard::bot {

struct BotOptions {
  // NOT_UNDERSTOOD turns in a row that escalate (the last one escalates).
  int not_understood_limit = 3;
  // The top intent is answered when its confidence reaches this and no
  // rival is close.
  float answer_threshold = 0.35f;
  // A rival whose confidence is at least this fraction of the top's makes
  // the bot ask which one was meant (CLARIFIED), when together they reach
  // answer_threshold.
  float clarify_ratio = 0.8f;
  // A request for a human is about the top intent from this confidence on,
  // or from human_topic_floor on when the top has this share of what the
  // ranking gives the intents: the request's own words, which mean no
  // intent, dilute the topic's.
  float human_topic_threshold = 0.25f;
  float human_topic_floor = 0.08f;
  float human_topic_share = 0.5f;
  // The ranking's sensitive intents escalate when their confidences add up
  // to this, whatever the top intent: a false alarm costs an agent a
  // minute, a miss costs a customer their funds.
  float sensitive_threshold = 0.3f;
  // What a matching cue adds to the models' probabilities when choosing
  // which sensitive topic a text is about.
  float sensitive_cue_weight = 0.5f;
  // Confidence multipliers from context: the previous turn's category, the
  // previous intent's follow-ups, the session's category.
  float previous_category_boost = 1.0f;
  float follow_up_boost = 0.5f;
  float session_category_boost = 0.1f;
  RankOptions rank;
  SafetyOptions safety;
  // How Reload trains the base's models (the options the models built
  // with the binary were trained with, unless changed: then every base is
  // trained).
  ModelOptions models;
  // Answers remembered per session for retried turns.
  int turns_remembered = 16;
  // Dialogues in the bot's own memory (when it is given no store).
  MemoryDialogueStore::Options dialogues;
};

// The bot's logic: answers customer turns from the knowledge base in
// service, keeps per-session dialogue context (in its memory, or in a store
// that replicas share), decides when to clarify and when to escalate, and
// records each turn's event.
//
// A turn from text goes through the safety layer first (CheckSafety: a
// request for a human, a sensitive topic, a complaint), whatever intent
// matching makes of it; then through the intent ranking (RankIntents), whose
// calibrated confidence alone decides between answering, clarifying and
// not understanding.
//
// Threading: with dialogues in memory and an EventLog that does not block
// (SqliteEventLog, MemoryEventLog), Answer, ListIntents and ResetDialogue
// never block (in-memory work under short per-shard locks; the turn's event
// is handed to the EventLog without waiting), so the gRPC adapter may run
// them on the callback thread. With PostgreSQL's dialogue store or event log
// Answer and ResetDialogue wait for the database: run them on a thread that
// may block. Reload and ReloadIfChanged read a file and wait for their
// event's commit: call them from a thread that may block. Thread-safe.
class Bot {
 public:
  // None owned; all must outlive the bot. `knowledge_base_path` is read by
  // Reload; empty means the base compiled into the binary
  // (DefaultKnowledgeBase), so that the bot starts from any directory.
  // `dialogues`: where dialogue contexts live; null keeps them in the bot's
  // own memory (options.dialogues).
  Bot(std::string knowledge_base_path, EventLog* events, Clock* clock, BotMetrics* metrics,
      BotOptions options, DialogueStore* dialogues = nullptr);

  struct ReloadResult {
    std::string version;
    std::string previous_version;
    int intent_count = 0;
    int example_count = 0;
    absl::Time loaded_at;
  };
  // Loads the knowledge base file, builds its models and puts it in
  // service, recording a bot.knowledge_base_reload event either way
  // (`actor`: who asked, or "startup"). The built-in base's models come
  // with the binary (DefaultModels), and so do those of any file with the
  // same content; another base's are trained, which takes a few seconds
  // and holds no lock that Answer takes: turns go on with the old base
  // until the new one is swapped in. Errors: FailedPrecondition (broken file:
  // "path:line: problem"), Unavailable (unreadable file, or the event could
  // not be committed), Internal (training failed); the old base then stays
  // in service.
  absl::StatusOr<ReloadResult> Reload(absl::string_view actor);

  // What ReloadIfChanged found and did.
  enum class FileCheck {
    // The file holds the base in service, or the content last rejected as
    // broken (tried again once it changes), or there is no file to watch
    // (the built-in base): nothing recorded, logged or counted.
    kUnchanged,
    kReloaded,
    // Broken (FailedPrecondition): the old base stays.
    kRejected,
    // Training failed or the reload could not be recorded: the old base
    // stays, and the next check tries again.
    kFailed,
    // The file cannot be read: the old base stays; logged once until it
    // can be read again.
    kUnreadable,
  };
  // Reads the knowledge base file and, when its content is not the base in
  // service, reloads it as Reload does (`actor` in the event), so that
  // every replica watching the same file converges on it without a
  // ReloadKnowledgeBase to each. Called periodically; blocks as Reload
  // does, and waits for a Reload under way.
  FileCheck ReloadIfChanged(absl::string_view actor);

  // Answers one turn into `response`, then calls `done` exactly once: at
  // once for invalid input (InvalidArgument naming the field) and for a
  // retried turn (the first answer, `replayed` set); otherwise once the
  // turn's event is committed (Unavailable if that failed: the turn is then
  // forgotten so that a retry answers it again; the dialogue context keeps
  // what the turn taught it). Unavailable, with nothing recorded, when the
  // dialogue store could not keep the turn; a store that records_events()
  // commits the event with the context, so then both or neither are kept.
  // `response` must stay valid
  // until `done`.
  void Answer(const v1::AnswerRequest& request, v1::AnswerResponse* response,
              std::function<void(absl::Status)> done);

  struct IntentPage {
    std::vector<v1::Intent> intents;
    std::string last_intent_id;  // empty on the last page
    std::string version;
  };
  // Intents after `after_id` in id order matching the filters (see
  // ListIntentsRequest). Errors: InvalidArgument (query, language).
  absl::StatusOr<IntentPage> ListIntents(common::v1::Category category,
                                         const std::string& query,
                                         const std::string& language, int page_size,
                                         const std::string& after_id) const;

  // Forgets a session's dialogue; true if there was one. Errors: Unavailable
  // (the dialogue store).
  absl::StatusOr<bool> ResetDialogue(const std::string& session_id);

  // Forgets dialogues idle past their expiry (called periodically).
  // Errors: Unavailable (the dialogue store).
  absl::StatusOr<int> ExpireDialogues();

  // The base in service (null before the first successful Reload).
  std::shared_ptr<const KnowledgeBase> knowledge_base() const;

  // Replaces the base in service without reading the file or recording an
  // event (benchmarks and tests of synthetic bases).
  void UseKnowledgeBase(std::shared_ptr<const KnowledgeBase> kb);

 private:
  struct Turn;
  // Reload's work on `content` (the file's or the built-in base's, or why
  // it could not be read).
  absl::StatusOr<ReloadResult> ReloadFrom(absl::StatusOr<std::string> content,
                                          absl::string_view actor)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_);
  void Decide(const KnowledgeBase& kb, Dialogue& dialogue, const v1::AnswerRequest& request,
              Turn& turn, v1::AnswerResponse& response) const;
  // Fills `event` with the turn's bot.turn_completed, sealed.
  static absl::Status SealTurnEvent(const v1::AnswerRequest& request,
                                    const v1::AnswerResponse& response, const Turn& turn,
                                    absl::Duration latency, absl::Time now,
                                    events::v1::Event& event);

  const std::string path_;
  EventLog* const events_;
  Clock* const clock_;
  BotMetrics* const metrics_;
  const BotOptions options_;
  // Set when the bot keeps dialogues in its own memory.
  const std::unique_ptr<MemoryDialogueStore> own_dialogues_;
  DialogueStore* const dialogues_;

  mutable absl::Mutex kb_mu_;  // held only to copy or swap the pointer
  std::shared_ptr<const KnowledgeBase> kb_ ABSL_GUARDED_BY(kb_mu_);
  // One reload or file check at a time, so that bases go into service in
  // the order their files were read.
  absl::Mutex reload_mu_;
  // The version of the content last rejected as broken, until the file
  // holds another.
  std::string rejected_version_ ABSL_GUARDED_BY(reload_mu_);
  bool file_unreadable_ ABSL_GUARDED_BY(reload_mu_) = false;
};

}  // namespace switchboard::bot
