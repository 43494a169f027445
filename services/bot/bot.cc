#include "services/bot/bot.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "libs/events/envelope.h"
#include "libs/log/log.h"
#include "libs/protoutil/time.h"
#include "libs/validation/validation.h"

namespace switchboard::bot {
namespace {

using common::v1::Category;
using common::v1::EscalationReason;

constexpr size_t kMaxText = 4000;
constexpr int kMaxGuesses = 3;
constexpr int kRankDepth = 20;
constexpr int kMaxQuickReplies = 6;
constexpr int kMaxDetails = 20;
constexpr char kIntentPrefix[] = "intent:";
constexpr char kHumanQuickReply[] = "handoff:human";
constexpr char kProducer[] = "bot";
constexpr char kKnowledgeBaseKey[] = "knowledge-base";

// Calibration: the confidence of a guess is a logistic function of how much
// of the query's weight the best phrasing covered, shared among close rivals
// by a softmax over relative scores. The constants were fitted to the
// evaluation set (bot_eval prints the reliability table that checks them).
constexpr float kCalibrationSlope = 9.f;
constexpr float kCalibrationCenter = 0.2f;
constexpr float kSoftmaxTemperature = 0.15f;  // relative to the top score

float MatchQuality(float coverage) {
  return 1.f / (1.f + std::exp(-kCalibrationSlope * (coverage - kCalibrationCenter)));
}

struct Replies {
  const char* not_understood;
  const char* clarify;
  const char* human_requested;
  const char* not_understood_escalated;
  const char* sensitive_handoff;
  const char* verify;
  const char* human_label;
};

const Replies& RepliesIn(Language language) {
  static const Replies kZhReplies{
      "抱歉，我没有理解您的问题。请用一句话描述您遇到的情况，例如“充值没到账”“提现一直在审核中”“忘记密码”。"
      "如需人工帮助，请输入“人工客服”。",
      "您想咨询的是以下哪个问题？请点击选择：",
      "好的，正在为您转接人工客服，请稍候。客服不会向您索要密码、验证码或私钥，请勿发送。",
      "抱歉，我多次没能理解您的问题，正在为您转接人工客服，请稍候。",
      "此问题需要人工客服处理，正在为您转接，请稍候。",
      "为保护您的账户，请先按提示完成身份验证，客服才能为您操作。",
      "人工客服",
  };
  static const Replies kEnReplies{
      "Sorry, I did not understand that. Please describe the problem in one sentence, for "
      "example \"deposit not credited\", \"withdrawal pending\" or \"forgot password\". To talk "
      "to an agent, type \"agent\".",
      "Which of these do you mean? Tap one:",
      "Sure, I am connecting you to a support agent now. Our agents never ask for your "
      "password, verification codes or private keys: do not send them.",
      "Sorry, I could not understand several messages in a row. I am connecting you to a "
      "support agent now.",
      "This needs a support agent; I am connecting you now.",
      "To protect your account, please complete identity verification when prompted, so "
      "that the agent can act on your account.",
      "Talk to an agent",
  };
  return language == kZh ? kZhReplies : kEnReplies;
}

bool IsVerified(const common::v1::VerificationState& v, absl::Time now) {
  if (v.method() == common::v1::VERIFICATION_METHOD_UNSPECIFIED ||
      v.level() == common::v1::VERIFICATION_LEVEL_UNSPECIFIED) {
    return false;
  }
  return !v.has_expires_at() || protoutil::FromTimestamp(v.expires_at()) > now;
}

bool ContainsSequence(const std::vector<std::string>& words,
                      const std::vector<std::string>& phrase) {
  if (phrase.empty() || phrase.size() > words.size()) return false;
  return std::search(words.begin(), words.end(), phrase.begin(), phrase.end()) != words.end();
}

// Details an agent needs that customers often write: networks, assets,
// transaction ids, order ids. Never secrets: short numeric codes are not
// collected.
void CollectDetails(absl::string_view text, std::vector<common::v1::CollectedDetail>& out) {
  static const auto* kNetworks = new absl::flat_hash_set<std::string>{
      "TRC20", "ERC20", "BEP20", "BEP2", "SPL", "TON", "ARBITRUM", "OPTIMISM",
      "POLYGON", "OMNI", "SOLANA", "BASE", "AVAXC"};
  static const auto* kAssets = new absl::flat_hash_set<std::string>{
      "USDT", "USDC", "BTC", "ETH", "BNB", "TRX", "SOL", "XRP", "DOGE", "LTC", "ADA", "DAI"};
  const std::string lower = absl::AsciiStrToLower(text);
  const bool mentions_order =
      absl::StrContains(lower, "order") || absl::StrContains(text, "订单");
  auto add = [&out](absl::string_view key, absl::string_view value) {
    if (static_cast<int>(out.size()) >= kMaxDetails) return;
    for (const auto& d : out) {
      if (d.key() == key && d.value() == value) return;
    }
    common::v1::CollectedDetail* detail = &out.emplace_back();
    detail->set_key(std::string(key));
    detail->set_value(std::string(value.substr(0, 256)));
  };
  for (absl::string_view token : absl::StrSplit(text, absl::ByAnyChar(" \t\r\n,;:()[]{}\"'"),
                                                absl::SkipEmpty())) {
    // Strip trailing sentence punctuation and any non-ASCII around the token.
    while (!token.empty() && (static_cast<unsigned char>(token.back()) >= 0x80 ||
                              token.back() == '.' || token.back() == '?' || token.back() == '!')) {
      token.remove_suffix(1);
    }
    while (!token.empty() && static_cast<unsigned char>(token.front()) >= 0x80) {
      token.remove_prefix(1);
    }
    if (token.empty()) continue;
    const std::string upper = absl::AsciiStrToUpper(token);
    absl::string_view hex = token;
    if (absl::StartsWith(hex, "0x") || absl::StartsWith(hex, "0X")) hex.remove_prefix(2);
    if (hex.size() >= 40 && std::all_of(hex.begin(), hex.end(), absl::ascii_isxdigit)) {
      add("txid", token);
    } else if (kNetworks->contains(upper)) {
      add("network", upper);
    } else if (kAssets->contains(upper)) {
      add("asset", upper);
    } else if (mentions_order && token.size() >= 8 && token.size() <= 32 &&
               std::all_of(token.begin(), token.end(), absl::ascii_isdigit)) {
      add("order_id", token);
    }
  }
}

std::string CategoryName(Category category) {
  if (category == common::v1::CATEGORY_UNSPECIFIED) return "unknown";
  return absl::AsciiStrToLower(common::v1::Category_Name(category).substr(sizeof("CATEGORY_") - 1));
}

}  // namespace

// What Decide worked out besides the response, for the event and metrics.
struct Bot::Turn {
  bool follow_up = false;
  bool from_quick_reply = false;
  bool from_text = false;
  EscalationReason reason = common::v1::ESCALATION_REASON_UNSPECIFIED;
  float top_confidence = 0;
};

bool AsksForHuman(const KnowledgeBase& kb, const Analysis& analysis) {
  for (const std::string& phrase : kb.human_phrases_zh) {
    if (absl::StrContains(analysis.cjk, phrase)) return true;
  }
  for (const auto& phrase : kb.human_phrases_en) {
    if (ContainsSequence(analysis.words, phrase)) return true;
  }
  return false;
}

Bot::Bot(std::string knowledge_base_path, EventLog* events, Clock* clock, BotMetrics* metrics,
         BotOptions options)
    : path_(std::move(knowledge_base_path)),
      events_(events),
      clock_(clock),
      metrics_(metrics),
      options_(options),
      dialogues_(options.dialogues) {}

std::shared_ptr<const KnowledgeBase> Bot::knowledge_base() const {
  absl::MutexLock lock(&kb_mu_);
  return kb_;
}

void Bot::UseKnowledgeBase(std::shared_ptr<const KnowledgeBase> kb) {
  metrics_->intents->Set(static_cast<double>(kb->intents.size()));
  absl::MutexLock lock(&kb_mu_);
  kb_ = std::move(kb);
}

absl::StatusOr<Bot::ReloadResult> Bot::Reload(absl::string_view actor) {
  absl::MutexLock reload_lock(&reload_mu_);
  std::shared_ptr<const KnowledgeBase> old = knowledge_base();
  absl::StatusOr<std::shared_ptr<const KnowledgeBase>> loaded = LoadKnowledgeBase(path_);
  const absl::Time now = clock_->Now();

  events::v1::Event event;
  events::v1::KnowledgeBaseReload* reload = event.mutable_knowledge_base_reload();
  reload->set_succeeded(loaded.ok());
  reload->set_previous_version(old ? old->version : "");
  const KnowledgeBase* in_service = loaded.ok() ? loaded->get() : old.get();
  if (in_service != nullptr) {
    reload->set_version(in_service->version);
    reload->set_intent_count(static_cast<int32_t>(in_service->intents.size()));
    reload->set_example_count(in_service->example_count);
  }
  if (!loaded.ok()) reload->set_error(std::string(loaded.status().message()));
  reload->set_actor_id(std::string(actor));
  absl::Status committed = events::Seal(event, kProducer, kKnowledgeBaseKey, now);
  if (committed.ok()) {
    absl::Notification done;
    events_->Append(event, [&](absl::Status s) {
      committed = s;
      done.Notify();
    });
    done.WaitForNotification();
  }
  if (!loaded.ok()) {
    metrics_->reloads_failed->Increment();
    log::Warning("knowledge_base_rejected", {{"error", loaded.status().ToString()},
                                             {"actor", std::string(actor)}});
    return loaded.status();
  }
  if (!committed.ok()) {
    metrics_->reloads_failed->Increment();
    log::Error("knowledge_base_event_failed", {{"error", committed.ToString()}});
    return absl::UnavailableError("the reload could not be recorded; the old base stays");
  }
  metrics_->reloads_ok->Increment();
  ReloadResult result{(*loaded)->version, old ? old->version : "",
                      static_cast<int>((*loaded)->intents.size()), (*loaded)->example_count, now};
  UseKnowledgeBase(*std::move(loaded));
  log::Info("knowledge_base_loaded", {{"version", result.version},
                                      {"intents", absl::StrCat(result.intent_count)},
                                      {"actor", std::string(actor)}});
  return result;
}

void Bot::Answer(const v1::AnswerRequest& request, v1::AnswerResponse* response,
                 std::function<void(absl::Status)> done) {
  const absl::Time start = clock_->Now();
  auto invalid = [&](absl::Status s) { done(std::move(s)); };
  if (absl::Status s = validation::ValidateId("session_id", request.session_id(), 128); !s.ok()) {
    return invalid(s);
  }
  if (absl::Status s = validation::ValidateId("turn_id", request.turn_id(), 64); !s.ok()) {
    return invalid(s);
  }
  if (absl::Status s = validation::ValidateText("text", request.text(), kMaxText); !s.ok()) {
    return invalid(s);
  }
  if (!request.quick_reply_id().empty()) {
    if (absl::Status s = validation::ValidateId("quick_reply_id", request.quick_reply_id(), 64);
        !s.ok()) {
      return invalid(s);
    }
  }
  if (request.language().size() > 35) {
    return invalid(absl::InvalidArgumentError("language: at most 35 characters"));
  }
  if (!common::v1::Category_IsValid(request.category())) {
    return invalid(absl::InvalidArgumentError("category: unknown category"));
  }
  if (!common::v1::Channel_IsValid(request.channel())) {
    return invalid(absl::InvalidArgumentError("channel: unknown channel"));
  }
  std::shared_ptr<const KnowledgeBase> kb = knowledge_base();
  if (kb == nullptr) return done(absl::UnavailableError("the knowledge base is not loaded"));
  const bool known_quick_reply =
      request.quick_reply_id() == kHumanQuickReply ||
      (absl::StartsWith(request.quick_reply_id(), kIntentPrefix) &&
       kb->Find(absl::string_view(request.quick_reply_id()).substr(sizeof(kIntentPrefix) - 1)));
  if (absl::StripAsciiWhitespace(request.text()).empty() && !known_quick_reply) {
    return invalid(absl::InvalidArgumentError(
        request.quick_reply_id().empty()
            ? "text: must not be empty unless quick_reply_id is set"
            : "quick_reply_id: unknown quick reply, and text is empty"));
  }

  Turn turn;
  bool replayed = false;
  const absl::Time now = clock_->Now();
  dialogues_.With(request.session_id(), now, [&](Dialogue& dialogue, bool) {
    for (const auto& [turn_id, answer] : dialogue.turns) {
      if (turn_id == request.turn_id()) {
        *response = answer;
        response->set_replayed(true);
        replayed = true;
        return;
      }
    }
    Decide(*kb, dialogue, request, turn, *response);
    dialogue.turns.emplace_back(request.turn_id(), *response);
    while (static_cast<int>(dialogue.turns.size()) > std::max(1, options_.turns_remembered)) {
      dialogue.turns.pop_front();
    }
  });
  if (replayed) return done(absl::OkStatus());

  metrics_->answers(response->outcome(), response->category()).Increment();
  if (turn.reason != common::v1::ESCALATION_REASON_UNSPECIFIED) {
    metrics_->escalations_by_reason[turn.reason]->Increment();
  }
  if (turn.from_text) metrics_->confidence->Observe(turn.top_confidence);

  events::v1::Event event;
  events::v1::TurnCompleted* completed = event.mutable_turn_completed();
  completed->set_session_id(request.session_id());
  completed->set_turn_id(request.turn_id());
  completed->set_outcome(response->outcome());
  completed->set_answered_intent_id(response->answered_intent_id());
  *completed->mutable_intent_guesses() = response->intent_guesses();
  completed->set_category(response->category());
  completed->set_detected_language(response->detected_language());
  completed->set_reply_language(response->reply_language());
  completed->set_from_quick_reply(turn.from_quick_reply);
  completed->set_follow_up(turn.follow_up);
  completed->set_not_understood_turns(response->not_understood_turns());
  completed->set_escalation_reason(turn.reason);
  completed->set_verification_required(response->verification_required());
  completed->set_knowledge_base_version(response->knowledge_base_version());
  completed->set_text_length(static_cast<int32_t>(validation::CountCodePoints(request.text())));
  protoutil::ToDuration(clock_->Now() - start, completed->mutable_latency());
  if (absl::Status s = events::Seal(event, kProducer, request.session_id(), now); !s.ok()) {
    return done(s);
  }
  events_->Append(std::move(event), [this, session = request.session_id(),
                                     turn_id = request.turn_id(), now,
                                     done = std::move(done)](absl::Status status) {
    if (status.ok()) return done(status);
    metrics_->event_failures->Increment();
    log::Error("turn_event_failed", {{"session_id", session}, {"error", status.ToString()}});
    dialogues_.With(session, now, [&](Dialogue& dialogue, bool) {
      dialogue.turns.erase(
          std::remove_if(dialogue.turns.begin(), dialogue.turns.end(),
                         [&](const auto& t) { return t.first == turn_id; }),
          dialogue.turns.end());
    });
    done(absl::UnavailableError("the turn could not be recorded; retry it"));
  });
}

void Bot::Decide(const KnowledgeBase& kb, Dialogue& dialogue, const v1::AnswerRequest& request,
                 Turn& turn, v1::AnswerResponse& response) const {
  const absl::Time now = clock_->Now();
  const Analysis analysis = Analyze(request.text(), &kb.lexicon);
  const std::string detected = DetectLanguage(analysis);
  const std::string reply_tag =
      detected.empty() ? ReplyLanguageFor(request.language()) : detected;
  const Language language = LanguageOf(reply_tag);
  const Replies& replies = RepliesIn(language);
  const bool verified = IsVerified(request.verification(), now);
  response.set_reply_language(reply_tag);
  response.set_detected_language(detected);
  response.set_knowledge_base_version(kb.version);
  CollectDetails(request.text(), dialogue.details);

  // Rank: raw scores, then context boosts over the top kRankDepth.
  std::vector<Candidate> raw;
  const IntentSpec* previous = kb.Find(dialogue.previous_intent);
  auto boost = [&](int i) {
    const IntentSpec& intent = kb.intents[i];
    float b = 1.f;
    if (dialogue.previous_category != common::v1::CATEGORY_UNSPECIFIED &&
        intent.category == dialogue.previous_category) {
      b += options_.previous_category_boost;
    }
    if (previous != nullptr && std::find(previous->follow_ups.begin(), previous->follow_ups.end(),
                                         intent.id) != previous->follow_ups.end()) {
      b += options_.follow_up_boost;
    }
    if (request.category() != common::v1::CATEGORY_UNSPECIFIED &&
        intent.category == request.category()) {
      b += options_.session_category_boost;
    }
    return b;
  };
  raw = kb.index.Rank(analysis.terms, kRankDepth, [](int) { return 1.f; });
  std::vector<Candidate> ranked = raw;
  for (Candidate& c : ranked) c.score *= boost(c.intent);
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const Candidate& a, const Candidate& b) { return a.score > b.score; });

  // Calibrated confidences: match quality of the top, shared among close
  // rivals by a softmax over relative scores.
  float quality = 0;
  std::vector<float> confidence;
  if (!ranked.empty()) {
    quality = MatchQuality(ranked[0].coverage);
    const float temperature = std::max(kSoftmaxTemperature * ranked[0].score, 1e-6f);
    float sum = 0;
    for (size_t i = 0; i < ranked.size() && i < kMaxGuesses + 1; ++i) {
      confidence.push_back(std::exp((ranked[i].score - ranked[0].score) / temperature));
      sum += confidence.back();
    }
    for (float& c : confidence) c = quality * c / sum;
  }
  for (size_t i = 0; i < ranked.size() && i < kMaxGuesses; ++i) {
    common::v1::IntentGuess* guess = response.add_intent_guesses();
    guess->set_intent_id(kb.intents[ranked[i].intent].id);
    guess->set_category(kb.intents[ranked[i].intent].category);
    guess->set_confidence(confidence[i]);
  }
  const bool understood = !ranked.empty() && ranked[0].coverage >= options_.min_coverage;
  // A follow-up: the context changed the top intent, or the top intent is
  // one the previous intent leads to.
  if (understood && dialogue.previous_category != common::v1::CATEGORY_UNSPECIFIED) {
    turn.follow_up = raw[0].intent != ranked[0].intent ||
                     (previous != nullptr &&
                      std::find(previous->follow_ups.begin(), previous->follow_ups.end(),
                                kb.intents[ranked[0].intent].id) != previous->follow_ups.end());
  }

  // Decide.
  const IntentSpec* chosen = nullptr;
  std::vector<const IntentSpec*> rivals;
  bool human = false;
  if (request.quick_reply_id() == kHumanQuickReply) {
    human = true;
    turn.from_quick_reply = true;
  } else if (absl::StartsWith(request.quick_reply_id(), kIntentPrefix) &&
             kb.Find(absl::string_view(request.quick_reply_id()).substr(sizeof(kIntentPrefix) - 1))) {
    chosen = kb.Find(absl::string_view(request.quick_reply_id()).substr(sizeof(kIntentPrefix) - 1));
    turn.from_quick_reply = true;
    response.clear_intent_guesses();
    common::v1::IntentGuess* guess = response.add_intent_guesses();
    guess->set_intent_id(chosen->id);
    guess->set_category(chosen->category);
    guess->set_confidence(1.f);
  } else {
    turn.from_text = true;
    turn.top_confidence = confidence.empty() ? 0.f : confidence[0];
    human = AsksForHuman(kb, analysis);
    if (!human && understood) {
      for (size_t i = 1; i < ranked.size() && i < kMaxGuesses; ++i) {
        if (ranked[i].score >= options_.clarify_ratio * ranked[0].score) {
          rivals.push_back(&kb.intents[ranked[i].intent]);
        }
      }
      // A sensitive top intent is not put to a choice: a human looks at it.
      if (rivals.empty() || kb.intents[ranked[0].intent].sensitive) {
        rivals.clear();
        chosen = &kb.intents[ranked[0].intent];
      }
    }
  }

  Category category = dialogue.previous_category;
  if (chosen != nullptr) {
    category = chosen->category;
  } else if (understood) {
    category = kb.intents[ranked[0].intent].category;
  }
  if (category == common::v1::CATEGORY_UNSPECIFIED) category = request.category();

  auto escalate = [&](EscalationReason reason, const std::string& text, bool needs_verification) {
    turn.reason = reason;
    response.set_outcome(v1::ANSWER_OUTCOME_ESCALATED);
    response.set_reply_text(text);
    response.set_verification_required(needs_verification && !verified);
    common::v1::HandoffContext* handoff = response.mutable_handoff();
    handoff->set_reason(reason);
    *handoff->mutable_intent_guesses() = response.intent_guesses();
    handoff->set_category(category);
    handoff->set_language(detected.empty() ? reply_tag : detected);
    const IntentSpec* about = chosen != nullptr ? chosen
                              : understood      ? &kb.intents[ranked[0].intent]
                                                : previous;
    std::string summary = about != nullptr ? about->titles[kEn] : "Unclear request";
    absl::StrAppend(&summary, " [", CategoryName(category), "]");
    if (reason == common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED) {
      absl::StrAppend(&summary, "; customer asked for a human");
    } else if (reason == common::v1::ESCALATION_REASON_NOT_UNDERSTOOD) {
      absl::StrAppend(&summary, "; bot did not understand ", dialogue.not_understood_turns,
                      " turns in a row");
    }
    if (!dialogue.details.empty()) {
      absl::StrAppend(&summary, "; ",
                      absl::StrJoin(dialogue.details, ", ", [](std::string* out, const auto& d) {
                        absl::StrAppend(out, d.key(), "=", d.value());
                      }));
    }
    if (summary.size() > 500) summary.resize(500);
    while (!summary.empty() && !validation::IsValidUtf8(summary)) summary.pop_back();
    handoff->set_summary(summary);
    for (const auto& d : dialogue.details) *handoff->add_collected_details() = d;
    handoff->set_not_understood_turns(dialogue.not_understood_turns);
    handoff->set_verification_required(
        needs_verification || category == common::v1::CATEGORY_ACCOUNT_SECURITY ||
        category == common::v1::CATEGORY_FROZEN_FUNDS);
    if (reason == common::v1::ESCALATION_REASON_NOT_UNDERSTOOD) {
      response.set_not_understood_turns(dialogue.not_understood_turns);
    }
    dialogue.not_understood_turns = 0;
  };

  response.set_category(category);
  if (human) {
    escalate(common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED, replies.human_requested, false);
  } else if (chosen != nullptr && chosen->sensitive) {
    std::string text = absl::StrCat(chosen->answers[language], "\n\n", replies.sensitive_handoff);
    if (!verified) absl::StrAppend(&text, replies.verify);
    response.set_answered_intent_id("");
    escalate(common::v1::ESCALATION_REASON_SENSITIVE_TOPIC, text, true);
  } else if (chosen != nullptr) {
    response.set_outcome(v1::ANSWER_OUTCOME_ANSWERED);
    response.set_answered_intent_id(chosen->id);
    response.set_reply_text(chosen->answers[language]);
    for (const QuickReplySpec& q : chosen->quick_replies) {
      if (response.quick_replies_size() >= kMaxQuickReplies) break;
      common::v1::QuickReply* reply = response.add_quick_replies();
      reply->set_id(q.id);
      reply->set_label(q.labels[language]);
    }
    for (const std::string& id : chosen->follow_ups) {
      if (response.quick_replies_size() >= kMaxQuickReplies) break;
      const std::string reply_id = absl::StrCat(kIntentPrefix, id);
      if (std::any_of(response.quick_replies().begin(), response.quick_replies().end(),
                      [&](const auto& q) { return q.id() == reply_id; })) {
        continue;
      }
      common::v1::QuickReply* reply = response.add_quick_replies();
      reply->set_id(reply_id);
      reply->set_label(kb.Find(id)->titles[language]);
    }
    dialogue.not_understood_turns = 0;
  } else if (!rivals.empty()) {
    response.set_outcome(v1::ANSWER_OUTCOME_CLARIFIED);
    response.set_reply_text(replies.clarify);
    rivals.insert(rivals.begin(), &kb.intents[ranked[0].intent]);
    for (const IntentSpec* intent : rivals) {
      common::v1::QuickReply* reply = response.add_quick_replies();
      reply->set_id(absl::StrCat(kIntentPrefix, intent->id));
      reply->set_label(intent->titles[language]);
    }
    dialogue.not_understood_turns = 0;
  } else {
    ++dialogue.not_understood_turns;
    if (dialogue.not_understood_turns >= options_.not_understood_limit) {
      escalate(common::v1::ESCALATION_REASON_NOT_UNDERSTOOD, replies.not_understood_escalated,
               false);
    } else {
      response.set_outcome(v1::ANSWER_OUTCOME_NOT_UNDERSTOOD);
      response.set_reply_text(replies.not_understood);
      response.set_not_understood_turns(dialogue.not_understood_turns);
      common::v1::QuickReply* reply = response.add_quick_replies();
      reply->set_id(kHumanQuickReply);
      reply->set_label(replies.human_label);
    }
  }
  if (chosen != nullptr) {
    dialogue.previous_intent = chosen->id;
    dialogue.previous_category = chosen->category;
  } else if (category != common::v1::CATEGORY_UNSPECIFIED) {
    dialogue.previous_category = category;
  }
}

absl::StatusOr<Bot::IntentPage> Bot::ListIntents(Category category, const std::string& query,
                                                 const std::string& language, int page_size,
                                                 const std::string& after_id) const {
  if (absl::Status s = validation::ValidateText("query", query, 100); !s.ok()) return s;
  if (!language.empty() && !absl::StartsWithIgnoreCase(language, "zh") &&
      !absl::StartsWithIgnoreCase(language, "en")) {
    return absl::InvalidArgumentError("language: use \"zh-CN\" or \"en\"");
  }
  std::shared_ptr<const KnowledgeBase> kb = knowledge_base();
  if (kb == nullptr) return absl::UnavailableError("the knowledge base is not loaded");
  const Language label_language = LanguageOf(ReplyLanguageFor(language));
  const std::string needle = absl::AsciiStrToLower(query);
  IntentPage page;
  page.version = kb->version;
  auto matches = [&](const IntentSpec& intent) {
    if (category != common::v1::CATEGORY_UNSPECIFIED && intent.category != category) return false;
    if (needle.empty()) return true;
    auto has = [&](const std::string& text) {
      return absl::StrContains(absl::AsciiStrToLower(text), needle);
    };
    if (has(intent.id) || has(intent.titles[kZh]) || has(intent.titles[kEn])) return true;
    return std::any_of(intent.examples.begin(), intent.examples.end(),
                       [&](const auto& e) { return has(e.second); });
  };
  auto it = std::upper_bound(kb->intents.begin(), kb->intents.end(), after_id,
                             [](const std::string& id, const IntentSpec& i) { return id < i.id; });
  for (; it != kb->intents.end(); ++it) {
    if (!matches(*it)) continue;
    if (static_cast<int>(page.intents.size()) == page_size) {
      page.last_intent_id = page.intents.back().intent_id();
      break;
    }
    v1::Intent& out = page.intents.emplace_back();
    out.set_intent_id(it->id);
    out.set_category(it->category);
    for (Language l : {kZh, kEn}) {
      v1::LocalizedText* title = out.add_titles();
      title->set_language(LanguageTag(l));
      title->set_text(it->titles[l]);
      v1::LocalizedText* answer = out.add_answers();
      answer->set_language(LanguageTag(l));
      answer->set_text(it->answers[l]);
    }
    for (const QuickReplySpec& q : it->quick_replies) {
      common::v1::QuickReply* reply = out.add_quick_replies();
      reply->set_id(q.id);
      reply->set_label(q.labels[label_language]);
    }
    for (const std::string& f : it->follow_ups) out.add_follow_up_intent_ids(f);
    out.set_sensitive(it->sensitive);
    out.set_example_count(static_cast<int32_t>(it->examples.size()));
  }
  return page;
}

bool Bot::ResetDialogue(const std::string& session_id) {
  const bool existed = dialogues_.Erase(session_id, clock_->Now());
  metrics_->dialogues->Set(dialogues_.size());
  return existed;
}

int Bot::ExpireDialogues() {
  const int expired = dialogues_.ExpireIdle(clock_->Now());
  metrics_->dialogues->Set(dialogues_.size());
  return expired;
}

}  // namespace switchboard::bot
