#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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
  bool sensitive = false;
  // Line of its "intent:" header, for messages.
  int line = 0;
};

// A parsed, validated, indexed knowledge base. Immutable once built, so one
// base can answer on many threads while a reload builds the next.
struct KnowledgeBase {
  // A hash of the file's content (16 hex digits): the same file always
  // gives the same version.
  std::string version;
  // Sorted by id.
  std::vector<IntentSpec> intents;
  absl::flat_hash_map<std::string, int> by_id;
  // Phrases that mean "let me talk to a human": Chinese ones match anywhere
  // in the text's CJK characters; English ones as a sequence of stemmed
  // words.
  std::vector<std::string> human_phrases_zh;
  std::vector<std::vector<std::string>> human_phrases_en;
  Lexicon lexicon;
  Index index;
  int example_count = 0;

  const IntentSpec* Find(absl::string_view id) const;
};

// Parses and validates knowledge base text. `name` prefixes error messages,
// which name the line and the problem ("kb/intents.kb:212: intent
// 'deposit_memo' has no en answer"). Errors: FailedPrecondition.
//
// The format is line-oriented (see the header of kb/intents.kb): "key: value"
// lines, "#" comments, blank lines; a line starting with a space or tab
// continues the previous value on a new line. Settings come first, then one
// block per intent starting with "intent: <id>".
absl::StatusOr<std::shared_ptr<const KnowledgeBase>> ParseKnowledgeBase(
    absl::string_view name, absl::string_view content);

// Reads and parses the file at `path`. Errors: Unavailable (cannot be read),
// FailedPrecondition (broken, as above).
absl::StatusOr<std::shared_ptr<const KnowledgeBase>> LoadKnowledgeBase(
    const std::string& path);

}  // namespace switchboard::bot
