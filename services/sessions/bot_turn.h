#pragma once

// Bot turns: what the bot is asked about a customer message, what its
// answer (or its failure) does to the session, and the order in which a
// session's turns run. The Sessions facade runs a turn on the bot's own
// bounded pool, commits the plan, and hands escalations to routing.

#include <deque>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "services/sessions/model.h"
#include "switchboard/bot/v1/bot_service.pb.h"

namespace switchboard::sessions {

// The bot's question for the committed customer `message` of `session`.
bot::v1::AnswerRequest AnswerRequestFor(const v1::Session& session,
                                        const v1::Message& message);

// What a bot turn does to the session.
struct BotPlan {
  // The bot's reply to post, if it gave a valid one (ESCALATED answers
  // carry one too: "an agent is coming").
  std::optional<v1::Message> reply;
  // The session leaves the bot with `handoff`: the bot escalated, failed,
  // or was not asked (`answer` an error).
  bool escalate = false;
  common::v1::HandoffContext handoff;
  // The category the session moves to: set when the bot ANSWERED about
  // another category than the session's (the customer picked GENERAL and
  // asked about a deposit), so that queues and reports follow the bot.
  std::optional<common::v1::Category> category;
};

// The plan for `answer` (or its error) to `session`'s current state.
BotPlan PlanBotTurn(const absl::StatusOr<bot::v1::AnswerResponse>& answer,
                    const v1::Session& session);

// The bot turns waiting per session, so that a session's turns run one at a
// time and in message order while different sessions' run in parallel.
// At most `max_waiting` turns wait per session behind the running one: a
// customer typing faster than the bot answers gets a human instead of an
// ever-longer queue. Memory is bounded by the sessions with a turn running.
// Not thread-safe (the Sessions facade guards it with its lock).
class BotTurnQueue {
 public:
  explicit BotTurnQueue(size_t max_waiting) : max_waiting_(max_waiting) {}

  enum class Admission {
    // No turn of the session runs: the caller runs this one now.
    kRunNow,
    // Another turn runs; this one waits for Next.
    kQueued,
    // Too many wait already: the caller escalates instead.
    kFull,
  };
  Admission Add(const v1::Message& message);

  // The session's next waiting turn, or nullopt: then no turn of the
  // session runs any more.
  std::optional<v1::Message> Next(const std::string& session_id);

  size_t sessions() const { return waiting_.size(); }

 private:
  const size_t max_waiting_;
  absl::flat_hash_map<std::string, std::deque<v1::Message>> waiting_;
};

}  // namespace switchboard::sessions
