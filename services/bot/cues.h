#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/bot/text.h"

namespace switchboard::bot {

// A cue: words that, found together anywhere in a message, mean the same
// thing however the rest is phrased ("账号" with "被盗", "someone" with
// "logged in"). The safety layer uses cues beside its learned model, so that
// the most important signals (account takeover, a request for a human) do
// not hang on a model's probability alone.
//
// Written as slots joined by "+"; each slot lists alternatives separated by
// "/"; a slot starting with "!" must NOT match. Every other slot must match
// somewhere in the text, in any order:
//
//   账号/账户/号 + 被盗/盗了/被黑
//   someone/somebody/stranger + login/logged in/accessed
//   币/钱/资产/余额 + 不见/没了/少了 + !充值/到账
//
// An alternative is either Chinese (matched as a substring of the text's CJK
// characters, punctuation and spaces ignored) or English words (matched as a
// sequence of whole words after the same normalisation and stemming as the
// text: "logged in" matches "Logged-in"); a trailing "*" on an English word
// matches any word starting with it ("unauthori*"). A leading "=" makes an
// alternative the whole message: "=客服" matches "客服", "客服！！" and
// "客服客服" but not "客服邮箱是多少", for a word that asks for something
// only when it is all the customer wrote.
class Cue {
 public:
  // Errors: InvalidArgument with the problem (empty slot, mixed scripts, a
  // cue of negated slots only). `lexicon` (may be null) gives the spellings
  // the text is read with, so that a variant in a pattern still matches.
  static absl::StatusOr<Cue> Parse(absl::string_view pattern, const Lexicon* lexicon = nullptr);

  bool Matches(const Analysis& analysis) const;

 private:
  struct Word {
    std::string text;
    bool prefix = false;
  };
  struct Slot {
    bool negated = false;
    std::vector<std::string> chinese;
    std::vector<std::vector<Word>> english;
    // Alternatives written with "=": the whole message, repeated or not.
    std::vector<std::string> whole_chinese;
    std::vector<std::vector<Word>> whole_english;
  };
  static bool SlotMatches(const Slot& slot, const Analysis& analysis);

  std::vector<Slot> slots_;
};

}  // namespace switchboard::bot
