#include "services/bot/bot.h"

#include <algorithm>
#include <array>
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
#include "services/bot/default_knowledge_base.h"
#include "services/bot/default_models.h"

namespace switchboard::bot {
namespace {

using common::v1::Category;
using common::v1::EscalationReason;

constexpr size_t kMaxText = 4000;
constexpr int kMaxGuesses = 3;
constexpr int kMaxQuickReplies = 6;
constexpr int kMaxDetails = 20;
constexpr char kIntentPrefix[] = "intent:";
constexpr char kHumanQuickReply[] = "handoff:human";
constexpr char kProducer[] = "bot";
constexpr char kKnowledgeBaseKey[] = "knowledge-base";

struct Replies {
  const char* not_understood;
  const char* clarify;
  const char* human_requested;
  const char* not_understood_escalated;
  const char* sensitive_handoff;
  const char* complaint_handoff;
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
      "同时我已为您转接人工客服，客服会先跟进您的问题，请稍候。",
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
      "I am also connecting you to a support agent, who will follow this up with you now.",
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

float SensitiveMass(const KnowledgeBase& kb, const Ranking& ranking) {
  float mass = 0;
  for (const RankedIntent& r : ranking.intents) {
    if (kb.intents[r.intent].sensitive) mass += r.confidence;
  }
  return mass;
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

Bot::Bot(std::string knowledge_base_path, EventLog* events, Clock* clock, BotMetrics* metrics,
         BotOptions options, DialogueStore* dialogues)
    : path_(std::move(knowledge_base_path)),
      events_(events),
      clock_(clock),
      metrics_(metrics),
      options_(options),
      own_dialogues_(dialogues == nullptr
                         ? std::make_unique<MemoryDialogueStore>(options.dialogues)
                         : nullptr),
      dialogues_(dialogues == nullptr ? own_dialogues_.get() : dialogues) {}

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
  return ReloadFrom(
      path_.empty() ? std::string(DefaultKnowledgeBase()) : ReadKnowledgeBaseFile(path_), actor);
}

Bot::FileCheck Bot::ReloadIfChanged(absl::string_view actor) {
  absl::MutexLock reload_lock(&reload_mu_);
  if (path_.empty()) return FileCheck::kUnchanged;
  absl::StatusOr<std::string> content = ReadKnowledgeBaseFile(path_);
  if (!content.ok()) {
    if (!file_unreadable_) {
      log::Warning("knowledge_base_unreadable", {{"error", content.status().ToString()}});
    }
    file_unreadable_ = true;
    return FileCheck::kUnreadable;
  }
  if (file_unreadable_) {
    log::Info("knowledge_base_readable", {{"path", path_}});
    file_unreadable_ = false;
  }
  const std::string version = KnowledgeBaseVersion(*content);
  if (version != rejected_version_) rejected_version_.clear();
  std::shared_ptr<const KnowledgeBase> in_service = knowledge_base();
  if ((in_service != nullptr && in_service->version == version) || version == rejected_version_) {
    return FileCheck::kUnchanged;
  }
  absl::StatusOr<ReloadResult> reloaded = ReloadFrom(*std::move(content), actor);
  if (reloaded.ok()) return FileCheck::kReloaded;
  return reloaded.status().code() == absl::StatusCode::kFailedPrecondition ? FileCheck::kRejected
                                                                            : FileCheck::kFailed;
}

absl::StatusOr<Bot::ReloadResult> Bot::ReloadFrom(absl::StatusOr<std::string> content,
                                                  absl::string_view actor) {
  std::shared_ptr<const KnowledgeBase> old = knowledge_base();
  absl::StatusOr<std::shared_ptr<const KnowledgeBase>> loaded =
      content.ok() ? ParseKnowledgeBase(path_.empty() ? kDefaultKnowledgeBaseName : path_,
                                        *content, options_.models, DefaultModels())
                   : content.status();
  if (content.ok()) {
    // A broken file is not tried again by ReloadIfChanged until it changes.
    rejected_version_ = loaded.status().code() == absl::StatusCode::kFailedPrecondition
                            ? KnowledgeBaseVersion(*content)
                            : "";
  }
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
  log::Info("knowledge_base_loaded",
            {{"version", result.version},
             {"intents", absl::StrCat(result.intent_count)},
             {"models", knowledge_base()->prebuilt_models ? "built with the binary" : "trained"},
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
  // A store that records events commits the turn's event with its context;
  // otherwise the event log gets it after.
  const bool event_with_context = dialogues_->records_events();
  events::v1::Event event;
  absl::Status sealed;
  const absl::Status kept = dialogues_->WithRecord(
      request.session_id(), now,
      [&](Dialogue& dialogue, bool) {
        // A store may run this again on a fresh copy of the dialogue.
        turn = Turn();
        response->Clear();
        replayed = false;
        event.Clear();
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
        if (event_with_context) {
          sealed = SealTurnEvent(request, *response, turn, clock_->Now() - start, now, event);
        }
      },
      &event);
  if (!kept.ok()) {
    metrics_->dialogue_failures->Increment();
    log::Error("dialogue_not_kept", {{"session_id", request.session_id()},
                                     {"error", kept.ToString()}});
    response->Clear();
    return done(absl::UnavailableError(
        absl::StrCat("the dialogue context could not be kept; retry the turn (",
                     kept.message(), ")")));
  }
  if (replayed) return done(absl::OkStatus());

  metrics_->answers(response->outcome(), response->category()).Increment();
  if (turn.reason != common::v1::ESCALATION_REASON_UNSPECIFIED) {
    metrics_->escalations_by_reason[turn.reason]->Increment();
  }
  if (turn.from_text) metrics_->confidence->Observe(turn.top_confidence);
  if (event_with_context) return done(sealed);

  if (absl::Status s =
          SealTurnEvent(request, *response, turn, clock_->Now() - start, now, event);
      !s.ok()) {
    return done(s);
  }
  events_->Append(std::move(event), [this, session = request.session_id(),
                                     turn_id = request.turn_id(), now,
                                     done = std::move(done)](absl::Status status) {
    if (status.ok()) return done(status);
    metrics_->event_failures->Increment();
    log::Error("turn_event_failed", {{"session_id", session}, {"error", status.ToString()}});
    // If this fails too, the turn stays answered in the context: a retry
    // replays the answer whose event was lost.
    dialogues_
        ->With(session, now,
               [&](Dialogue& dialogue, bool) {
                 dialogue.turns.erase(
                     std::remove_if(dialogue.turns.begin(), dialogue.turns.end(),
                                    [&](const auto& t) { return t.first == turn_id; }),
                     dialogue.turns.end());
               })
        .IgnoreError();
    done(absl::UnavailableError("the turn could not be recorded; retry it"));
  });
}

absl::Status Bot::SealTurnEvent(const v1::AnswerRequest& request,
                                const v1::AnswerResponse& response, const Turn& turn,
                                absl::Duration latency, absl::Time now,
                                events::v1::Event& event) {
  event.Clear();
  events::v1::TurnCompleted* completed = event.mutable_turn_completed();
  completed->set_session_id(request.session_id());
  completed->set_turn_id(request.turn_id());
  completed->set_outcome(response.outcome());
  completed->set_answered_intent_id(response.answered_intent_id());
  *completed->mutable_intent_guesses() = response.intent_guesses();
  completed->set_category(response.category());
  completed->set_detected_language(response.detected_language());
  completed->set_reply_language(response.reply_language());
  completed->set_from_quick_reply(turn.from_quick_reply);
  completed->set_follow_up(turn.follow_up);
  completed->set_not_understood_turns(response.not_understood_turns());
  completed->set_escalation_reason(turn.reason);
  completed->set_verification_required(response.verification_required());
  completed->set_knowledge_base_version(response.knowledge_base_version());
  completed->set_text_length(static_cast<int32_t>(validation::CountCodePoints(request.text())));
  protoutil::ToDuration(latency, completed->mutable_latency());
  return events::Seal(event, kProducer, request.session_id(), now);
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

  const IntentSpec* previous = kb.Find(dialogue.previous_intent);
  auto leads_to = [](const IntentSpec* from, const std::string& id) {
    return from != nullptr &&
           std::find(from->follow_ups.begin(), from->follow_ups.end(), id) != from->follow_ups.end();
  };
  auto boost = [&](int i) {
    const IntentSpec& intent = kb.intents[i];
    float b = 1.f;
    if (dialogue.previous_category != common::v1::CATEGORY_UNSPECIFIED &&
        intent.category == dialogue.previous_category) {
      b += options_.previous_category_boost;
    }
    if (leads_to(previous, intent.id)) b += options_.follow_up_boost;
    if (request.category() != common::v1::CATEGORY_UNSPECIFIED &&
        intent.category == request.category()) {
      b += options_.session_category_boost;
    }
    return b;
  };
  const Ranking ranking = RankIntents(kb, analysis, boost, options_.rank);
  auto set_guesses = [&](const std::vector<RankedIntent>& ranked) {
    response.clear_intent_guesses();
    for (size_t i = 0; i < ranked.size() && i < kMaxGuesses; ++i) {
      common::v1::IntentGuess* guess = response.add_intent_guesses();
      guess->set_intent_id(kb.intents[ranked[i].intent].id);
      guess->set_category(kb.intents[ranked[i].intent].category);
      guess->set_confidence(ranked[i].confidence);
    }
  };
  set_guesses(ranking.intents);
  const IntentSpec* top = ranking.intents.empty() ? nullptr : &kb.intents[ranking.intents[0].intent];
  const float top_confidence = ranking.intents.empty() ? 0.f : ranking.intents[0].confidence;
  auto confidence_of = [&](const IntentSpec* intent) {
    for (const RankedIntent& r : ranking.intents) {
      if (&kb.intents[r.intent] == intent) return r.confidence;
    }
    return 0.f;
  };

  // Decide. `chosen` is the intent the bot acts on (answers, or escalates
  // about when it is sensitive or a handoff); `human` an explicit request
  // for a human, `about` what such an escalation concerns.
  const IntentSpec* chosen = nullptr;
  float chosen_confidence = 0;
  std::vector<const IntentSpec*> rivals;
  bool human = false;
  if (request.quick_reply_id() == kHumanQuickReply) {
    human = true;
    turn.from_quick_reply = true;
  } else if (absl::StartsWith(request.quick_reply_id(), kIntentPrefix) &&
             kb.Find(absl::string_view(request.quick_reply_id()).substr(sizeof(kIntentPrefix) - 1))) {
    chosen = kb.Find(absl::string_view(request.quick_reply_id()).substr(sizeof(kIntentPrefix) - 1));
    chosen_confidence = 1.f;
    turn.from_quick_reply = true;
  } else {
    turn.from_text = true;
    turn.top_confidence = top_confidence;
    const SafetyVerdict safety = CheckSafety(kb, analysis, options_.safety);
    // Which sensitive topic a sensitive text is about: of the sensitive
    // intents a cue or either model names, the one with the most evidence,
    // the two models' probabilities plus sensitive_cue_weight for a cue
    // (a cue says the text is sensitive more surely than which topic it
    // is: "my coins were moved out" matches a missing-funds cue, both models
    // read a takeover). A tie goes to the first cue.
    auto choose_sensitive = [&] {
      std::vector<int> candidates = safety.sensitive_cues;
      for (const auto& [intent, p] : safety.sensitive_probabilities) candidates.push_back(intent);
      for (const RankedIntent& r : ranking.intents) {
        if (kb.intents[r.intent].sensitive) candidates.push_back(r.intent);
      }
      float best = -1;
      for (int intent : candidates) {
        const bool cue = std::find(safety.sensitive_cues.begin(), safety.sensitive_cues.end(),
                                   intent) != safety.sensitive_cues.end();
        const float score = safety.SensitiveProbability(intent) +
                            confidence_of(&kb.intents[intent]) +
                            (cue ? options_.sensitive_cue_weight : 0.f);
        if (score > best) {
          best = score;
          chosen = &kb.intents[intent];
        }
      }
      if (chosen != nullptr) {
        chosen_confidence = std::max(confidence_of(chosen),
                                     safety.SensitiveProbability(chosen - kb.intents.data()));
      }
    };
    // A cue is explicit and wins; so does an explicit request for a human
    // over the models' guess at a sensitive topic ("can someone take over
    // my case" is not an account takeover). The ranking's sensitive intents
    // together, when the safety model missed them (frozen or missing?),
    // are enough to hand over.
    if (safety.sensitive_by_cue() || (safety.sensitive && !safety.human)) {
      choose_sensitive();
    } else if (safety.human && safety.handoff >= 0) {
      // A dissatisfied customer asking for a human: the complaint flow,
      // which hands over too.
      chosen = &kb.intents[safety.handoff];
      chosen_confidence = std::max(confidence_of(chosen), safety.handoff_probability);
    } else if (safety.human) {
      human = true;
    } else if (SensitiveMass(kb, ranking) >= options_.sensitive_threshold) {
      choose_sensitive();
    } else if (safety.handoff >= 0) {
      chosen = &kb.intents[safety.handoff];
      chosen_confidence = std::max(confidence_of(chosen), safety.handoff_probability);
    } else if (top != nullptr) {
      float together = top_confidence;
      for (size_t i = 1; i < ranking.intents.size() && i < kMaxGuesses; ++i) {
        if (ranking.intents[i].confidence >= options_.clarify_ratio * top_confidence) {
          rivals.push_back(&kb.intents[ranking.intents[i].intent]);
          together += ranking.intents[i].confidence;
        }
      }
      if (together < options_.answer_threshold) {
        rivals.clear();
      } else if (rivals.empty() || top->sensitive) {
        // A sensitive top intent is not put to a choice: a human looks at it.
        rivals.clear();
        chosen = top;
        chosen_confidence = top_confidence;
      }
    }
  }
  if (chosen != nullptr && turn.from_text && dialogue.previous_category != common::v1::CATEGORY_UNSPECIFIED) {
    // A follow-up: the context changed the top intent, or the previous
    // intent leads to this one.
    turn.follow_up = (ranking.unboosted_top >= 0 && &kb.intents[ranking.unboosted_top] != chosen) ||
                     leads_to(previous, chosen->id);
  }
  // An explicit request for a human in a message that also says what it is
  // about ("my deposit is missing, get me an agent").
  const IntentSpec* human_about = nullptr;
  if (human && top != nullptr && !top->small_talk &&
      (top_confidence >= options_.human_topic_threshold ||
       (top_confidence >= options_.human_topic_floor &&
        top_confidence >= options_.human_topic_share * (1.f - ranking.none)))) {
    human_about = top;
  }

  // The conversation's category: small talk and a bare request for a human
  // say nothing about the topic, so they keep it (sessions moves the
  // session to the category an answer reports).
  Category category = dialogue.previous_category;
  if (chosen != nullptr && !chosen->small_talk) {
    category = chosen->category;
  } else if (human_about != nullptr) {
    category = human_about->category;
  } else if (chosen == nullptr && !ranking.intents.empty()) {
    // Unsure of the intent, the bot may still be sure of the category (the
    // intents it hesitates between share it): routing needs no more. For a
    // request for a human only a topic counts: GENERAL intents (how to
    // reach support) are what the request itself is about.
    std::array<float, 9> mass{};
    for (const RankedIntent& r : ranking.intents) {
      const IntentSpec& intent = kb.intents[r.intent];
      const Category c = intent.category;
      if (!intent.small_talk && !(human && c == common::v1::CATEGORY_GENERAL) && c > 0 &&
          c < static_cast<int>(mass.size())) {
        mass[c] += r.confidence;
      }
    }
    const auto best = std::max_element(mass.begin(), mass.end());
    if (*best >= options_.answer_threshold) {
      category = static_cast<Category>(best - mass.begin());
    }
  }
  if (category == common::v1::CATEGORY_UNSPECIFIED) category = request.category();

  // Hands over about `about` (null when unknown): the guesses lead with it,
  // so that they agree with the summary.
  auto escalate = [&](EscalationReason reason, const std::string& text, bool needs_verification,
                      const IntentSpec* about, float about_confidence) {
    turn.reason = reason;
    response.set_outcome(v1::ANSWER_OUTCOME_ESCALATED);
    response.set_reply_text(text);
    response.set_verification_required(needs_verification && !verified);
    common::v1::HandoffContext* handoff = response.mutable_handoff();
    handoff->set_reason(reason);
    // The hand-off is about `about`: its category is that intent's, so that
    // the queue, the summary and the guesses agree.
    if (about != nullptr) {
      category = about->category;
      response.set_category(category);
    }
    if (about != nullptr) {
      std::vector<RankedIntent> guesses = {{static_cast<int>(about - kb.intents.data()),
                                            std::min(1.f, about_confidence)}};
      for (const RankedIntent& r : ranking.intents) {
        if (&kb.intents[r.intent] != about) guesses.push_back(r);
      }
      set_guesses(guesses);
      *handoff->mutable_intent_guesses() = response.intent_guesses();
    }
    handoff->set_category(category);
    handoff->set_language(detected.empty() ? reply_tag : detected);
    std::string summary = about != nullptr ? about->titles[kEn] : "Unclear request";
    absl::StrAppend(&summary, " [", CategoryName(category), "]");
    if (reason == common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED) {
      absl::StrAppend(&summary, about != nullptr && about->handoff
                                    ? "; customer is dissatisfied"
                                    : "; customer asked for a human");
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
  if (chosen != nullptr && chosen->sensitive) {
    std::string text = absl::StrCat(chosen->answers[language], "\n\n", replies.sensitive_handoff);
    if (!verified) absl::StrAppend(&text, replies.verify);
    escalate(common::v1::ESCALATION_REASON_SENSITIVE_TOPIC, text, true, chosen, chosen_confidence);
  } else if (human) {
    // About what this message names, else what the conversation was about,
    // unless this message points at another topic.
    const IntentSpec* about =
        human_about != nullptr                                 ? human_about
        : previous != nullptr && previous->category == category ? previous
                                                                : nullptr;
    escalate(common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED, replies.human_requested, false,
             about, human_about != nullptr ? top_confidence : dialogue.previous_confidence);
  } else if (chosen != nullptr && chosen->handoff) {
    escalate(common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED,
             absl::StrCat(chosen->answers[language], "\n\n", replies.complaint_handoff), false,
             chosen, chosen_confidence);
  } else if (chosen != nullptr) {
    if (turn.from_quick_reply) {
      set_guesses({{static_cast<int>(chosen - kb.intents.data()), 1.f}});
    }
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
    rivals.insert(rivals.begin(), top);
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
               false, previous, dialogue.previous_confidence);
    } else {
      response.set_outcome(v1::ANSWER_OUTCOME_NOT_UNDERSTOOD);
      response.set_reply_text(replies.not_understood);
      response.set_not_understood_turns(dialogue.not_understood_turns);
      common::v1::QuickReply* reply = response.add_quick_replies();
      reply->set_id(kHumanQuickReply);
      reply->set_label(replies.human_label);
    }
  }
  if (chosen != nullptr && !chosen->small_talk) {
    dialogue.previous_intent = chosen->id;
    dialogue.previous_confidence = chosen_confidence;
    dialogue.previous_category = chosen->category;
  } else if (chosen == nullptr && category != common::v1::CATEGORY_UNSPECIFIED) {
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

absl::StatusOr<bool> Bot::ResetDialogue(const std::string& session_id) {
  absl::StatusOr<bool> existed = dialogues_->Erase(session_id, clock_->Now());
  metrics_->dialogues->Set(dialogues_->size());
  return existed;
}

absl::StatusOr<int> Bot::ExpireDialogues() {
  absl::StatusOr<int> expired = dialogues_->ExpireIdle(clock_->Now());
  if (!expired.ok()) {
    log::Error("dialogue_sweep_failed", {{"error", expired.status().ToString()}});
  }
  metrics_->dialogues->Set(dialogues_->size());
  return expired;
}

}  // namespace switchboard::bot
