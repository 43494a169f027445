#include "services/bot/cues.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace switchboard::bot {

absl::StatusOr<Cue> Cue::Parse(absl::string_view pattern, const Lexicon* lexicon) {
  Cue cue;
  bool positive = false;
  for (absl::string_view part : absl::StrSplit(pattern, '+')) {
    part = absl::StripAsciiWhitespace(part);
    Slot slot;
    if (absl::ConsumePrefix(&part, "!")) slot.negated = true;
    for (absl::string_view alternative : absl::StrSplit(part, '/')) {
      alternative = absl::StripAsciiWhitespace(alternative);
      if (alternative.empty()) continue;
      const bool whole = absl::ConsumePrefix(&alternative, "=");
      bool prefix = false;
      std::string text(alternative);
      if (absl::ConsumeSuffix(&alternative, "*")) {
        prefix = true;
        text = std::string(alternative);
      }
      const Analysis analysis = Analyze(text, lexicon);
      if (!analysis.cjk.empty() && !analysis.words.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cue alternative \"", text, "\" mixes Chinese and English; split it into two slots"));
      }
      if (!analysis.cjk.empty()) {
        if (prefix) {
          return absl::InvalidArgumentError(
              absl::StrCat("cue alternative \"", text, "*\": \"*\" is for English words"));
        }
        (whole ? slot.whole_chinese : slot.chinese).push_back(analysis.cjk);
      } else if (!analysis.words.empty()) {
        std::vector<Word> words;
        for (const std::string& w : analysis.words) words.push_back({w, false});
        // The prefix is stemmed like the text's words; write the start of
        // the stem ("unauthori*", not "unauthorized*").
        words.back().prefix = prefix;
        (whole ? slot.whole_english : slot.english).push_back(std::move(words));
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("cue alternative \"", text, "\" has no word"));
      }
    }
    if (slot.chinese.empty() && slot.english.empty() && slot.whole_chinese.empty() &&
        slot.whole_english.empty()) {
      return absl::InvalidArgumentError("cue has an empty slot");
    }
    positive = positive || !slot.negated;
    cue.slots_.push_back(std::move(slot));
  }
  if (!positive) return absl::InvalidArgumentError("cue needs a slot that is not negated");
  return cue;
}

namespace {

// Whether `phrase` matches `words` from `start` on.
template <typename Word>
bool PhraseAt(const std::vector<Word>& phrase, const std::vector<std::string>& words,
              size_t start) {
  if (start + phrase.size() > words.size()) return false;
  for (size_t i = 0; i < phrase.size(); ++i) {
    const std::string& w = words[start + i];
    if (phrase[i].prefix ? !absl::StartsWith(w, phrase[i].text) : w != phrase[i].text) {
      return false;
    }
  }
  return true;
}

// Whether `text` is `unit` said once or more in a row and nothing else.
bool RepeatsOnly(absl::string_view text, absl::string_view unit) {
  if (text.empty() || text.size() % unit.size() != 0) return false;
  for (size_t at = 0; at < text.size(); at += unit.size()) {
    if (text.substr(at, unit.size()) != unit) return false;
  }
  return true;
}

}  // namespace

bool Cue::SlotMatches(const Slot& slot, const Analysis& analysis) {
  for (const std::string& chinese : slot.chinese) {
    if (absl::StrContains(analysis.cjk, chinese)) return true;
  }
  const std::vector<std::string>& words = analysis.words;
  for (const std::vector<Word>& phrase : slot.english) {
    for (size_t start = 0; start + phrase.size() <= words.size(); ++start) {
      if (PhraseAt(phrase, words, start)) return true;
    }
  }
  if (words.empty()) {
    for (const std::string& chinese : slot.whole_chinese) {
      if (RepeatsOnly(analysis.cjk, chinese)) return true;
    }
  }
  if (analysis.cjk.empty()) {
    for (const std::vector<Word>& phrase : slot.whole_english) {
      if (words.empty() || words.size() % phrase.size() != 0) continue;
      bool repeated = true;
      for (size_t start = 0; start < words.size() && repeated; start += phrase.size()) {
        repeated = PhraseAt(phrase, words, start);
      }
      if (repeated) return true;
    }
  }
  return false;
}

bool Cue::Matches(const Analysis& analysis) const {
  return std::all_of(slots_.begin(), slots_.end(), [&](const Slot& slot) {
    return SlotMatches(slot, analysis) != slot.negated;
  });
}

}  // namespace switchboard::bot
