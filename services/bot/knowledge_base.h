#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/bot/classifier.h"
#include "services/bot/cues.h"
#include "services/bot/matcher.h"
#include "services/bot/text.h"
#include "switchboard/common/v1/common.pb.h"

namespace switchboard::bot {

// The two languages the bot answers in; index into per-language arrays.
enum Language { kZh = 0, kEn = 1 };
inline constexpr int kLanguages = 2;
// "zh-CN" or "en".
const char* LanguageTag(Language language);
Language LanguageOf(absl::string_view reply_tag);

// A button offered with an answer.
struct QuickReplySpec {
  std::string id;                              // e.g. "intent:deposit_memo"
  std::array<std::string, kLanguages> labels;  // by Language
};

// One intent of the knowledge base.
struct IntentSpec {
  std::string id;
  common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
  std::array<std::string, kLanguages> titles;
  std::array<std::string, kLanguages> answers;
  // Example phrasings with their language.
  std::vector<std::pair<Language, std::string>> examples;
  // Extra terms (space separated in the file) that point to this intent.
  std::vector<std::string> keywords;
  std::vector<QuickReplySpec> quick_replies;
  std::vector<std::string> follow_ups;
  // Escalates to a human and asks for identity verification (account
  // takeover, frozen or missing funds).
  bool sensitive = false;
  // Answers, then hands the customer to a human (a complaint).
  bool handoff = false;
  // Greetings, thanks, acknowledgements: answered, but the dialogue's
  // context (what the conversation is about) stays as it was.
  bool small_talk = false;
  // Line of its "intent:" header, for messages.
  int line = 0;
};

// A phrasing that is not an intent's: a request for a human, or text the
// bot must not answer (off-topic, noise).
struct Phrasing {
  Language language = kEn;
  std::string text;
  int line = 0;
};

// A cue of the safety layer with what it signals: a request for a human
// (`intent` -1) or an escalating intent (index into `intents`).
struct SafetyCue {
  int intent = -1;
  Cue cue;
  int line = 0;
};

// A parsed, validated, indexed knowledge base with its trained models.
// Immutable once built, so one base can answer on many threads while a
// reload builds the next.
struct KnowledgeBase {
  // A hash of the file's content (16 hex digits): the same file always
  // gives the same version.
  std::string version;
  // Sorted by id.
  std::vector<IntentSpec> intents;
  absl::flat_hash_map<std::string, int> by_id;
  // Phrasings of asking for a human, in both languages: training data of
  // the safety model.
  std::vector<Phrasing> human_requests;
  // Text the bot must not answer: training data for "no intent".
  std::vector<Phrasing> out_of_scope;
  std::vector<SafetyCue> cues;
  // Words customers wrap around what they mean (greetings, politeness,
  // urgency, context), each with "..." where the phrasing goes ("你好，...",
  // "... asap pls"): the models also learn phrasings wrapped in one, so
  // that wrapping neither changes an intent nor makes a text off-topic.
  std::vector<Phrasing> fillers;
  // Chinese domain words and spellings (abbreviations, common typos).
  Lexicon lexicon;

  // Built from the above by BuildModels.
  Index index;
  // Labels: intent indexes, then kNoIntent(): the intents' examples and
  // titles, and (as no intent) the out-of-scope and human-request
  // phrasings; each phrasing but small talk also once wrapped in a filler
  // of its language.
  std::shared_ptr<const TextClassifier> intent_model;
  // The safety model: labels kSafeLabel (every phrasing that needs no
  // human), kHumanLabel (human requests), then one per escalating intent
  // (sensitive or handoff), in `escalating` order. Null when the base has
  // neither human requests nor escalating intents.
  std::shared_ptr<const TextClassifier> safety_model;
  std::vector<int> escalating;
  int example_count = 0;
  // What the models were trained from: the content and the options that
  // train them (ModelKey; empty for a copy rebuilt from fewer phrasings);
  // and whether they were loaded from models built with the binary rather
  // than trained when the base was loaded.
  std::string model_key;
  bool prebuilt_models = false;

  static constexpr int kSafeLabel = 0;
  static constexpr int kHumanLabel = 1;
  int NoIntent() const { return static_cast<int>(intents.size()); }
  const IntentSpec* Find(absl::string_view id) const;
};

// Options of the models trained for a base.
struct ModelOptions {
  TextClassifier::Options intent;
  TextClassifier::Options safety;
};

// The key of the models trained for a base: a hash of its content, its
// size and the options that train the models. Training is deterministic,
// so equal keys mean equal models.
std::string ModelKey(absl::string_view content, const ModelOptions& options);

// The trained models of `kb` in one blob (its model key, then each model in
// fastText's format), to be trained once when the binary is built and
// given back to ParseKnowledgeBase as `prebuilt`. Errors: Unavailable (no
// temporary folder).
absl::StatusOr<std::string> SerializeModels(const KnowledgeBase& kb);

// Parses and validates knowledge base text, then builds it (BuildModels).
// When `prebuilt` (SerializeModels' blob; may be empty) holds the models of
// this very content and options, they are loaded instead of trained, which
// takes a fraction of the time; otherwise they are trained. The same
// content with the same options again returns the base built last time:
// training is deterministic, so it would be the same. `name` prefixes error
// messages, which name the line and the problem ("kb/intents.kb:212: intent
// 'deposit_memo' has no en answer"). Errors: FailedPrecondition (a broken
// file), Internal or Unavailable (training), InvalidArgument (a `prebuilt`
// blob that claims this base's key but does not load).
//
// The format is line-oriented (see the header of kb/intents.kb): "key: value"
// lines, "#" comments, blank lines; a line starting with a space or tab
// continues the previous value on a new line. Settings come first, then one
// block per intent starting with "intent: <id>".
absl::StatusOr<std::shared_ptr<const KnowledgeBase>> ParseKnowledgeBase(
    absl::string_view name, absl::string_view content, const ModelOptions& options = {},
    absl::string_view prebuilt = {});

// Indexes the phrasings of a parsed base and trains its models, replacing
// any built before (so a copy with fewer phrasings can be rebuilt, as
// cross-validation does). Training is deterministic and takes a few
// seconds for the repository's base (4,300 phrasings, twice as many
// training texts with the fillers); it never runs on an answering
// thread. Errors: Internal (fastText failed), Unavailable (no temporary
// folder for training).
absl::Status BuildModels(KnowledgeBase& kb, const ModelOptions& options);

// As BuildModels, but loads the models from `prebuilt` (SerializeModels'
// blob, which the caller checked is for this base) instead of training
// them. Errors: InvalidArgument (the blob does not load).
absl::Status BuildModelsFrom(KnowledgeBase& kb, absl::string_view prebuilt);

// The version a base with this content has (KnowledgeBase::version),
// without parsing it: whether a file still holds the base in service.
std::string KnowledgeBaseVersion(absl::string_view content);

// The content of the knowledge base file at `path`. Errors: Unavailable
// (cannot be read).
absl::StatusOr<std::string> ReadKnowledgeBaseFile(const std::string& path);

// Reads and parses the file at `path` (with `prebuilt` as above). Errors:
// Unavailable (cannot be read), FailedPrecondition (broken, as above).
absl::StatusOr<std::shared_ptr<const KnowledgeBase>> LoadKnowledgeBase(
    const std::string& path, const ModelOptions& options = {}, absl::string_view prebuilt = {});

}  // namespace switchboard::bot
