#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"

namespace switchboard::bot {

// Text analysis for matching, without an external NLP library.
//
// Normalisation: full-width ASCII and the ideographic space become their
// ASCII forms, Latin letters are lower-cased, apostrophes inside words are
// dropped ("hasn't" -> "hasnt"); everything that is neither a letter, a digit
// nor a CJK ideograph (punctuation, emoji, symbols, control characters)
// separates words.
//
// Terms, prefixed by kind so that kinds never collide:
//   "e:" an English (Latin-script) word, stop words removed, lightly stemmed
//        ("deposits" -> "deposit", "withdrawing" -> "withdraw");
//   "c:" a CJK character (unigram), common function characters removed;
//   "b:" two adjacent CJK characters (bigram): the fallback word segmentation
//        (ICU's dictionary segmenter is not in the build);
//   "w:" a word of the domain lexicon found in a CJK run ("防钓鱼码").
// Unigrams are weak evidence, bigrams and lexicon words strong: see Weight.

// A term with its query weight.
struct Term {
  std::string text;
  float weight = 1.0f;
};

// What a text says, for matching and for choosing the reply language.
struct Analysis {
  // The terms, in text order, repeated as they occur.
  std::vector<Term> terms;
  // English words after normalisation and stemming, in order (stop words
  // kept), for matching phrases such as "real person".
  std::vector<std::string> words;
  // The CJK characters of the text, in order, without separators, for
  // matching Chinese phrases such as "转人工".
  std::string cjk;
  // The classifier's input: space-separated tokens in text order, each an
  // English word as in `words` (stop words dropped but for question words
  // and pronouns) or two adjacent CJK characters (a run of one
  // character gives that character); the classifier adds token bigrams and
  // character n-grams itself. Numbers become "<num>" and identifiers
  // longer than 24 characters "<id>": their value says nothing about the
  // intent ("had 2 btc, now 0.3 left" is about any amounts), but an HTTP
  // status (400 to 599) or "2fa" does and stays. An amount written with its
  // unit ("500u", "20k") is read as a number and the unit ("u" as "usdt").
  // A text of stop words only ("got it") keeps them: they are all it says.
  // Repetition is read once: a word said twice in a row ("ok ok"), a run
  // of Chinese characters that repeats one unit ("收到收到").
  std::string tokens;
  // Counts used for language detection.
  int cjk_chars = 0;
  int latin_words = 0;
};

// The domain lexicon: Chinese words (2+ characters) recognised as terms,
// and spellings: variants read as a canonical form before anything else
// sees the text ("pw" as "password", "体现" as "提现"), so that
// abbreviations and common typos mean what their canonical form means to
// the classifiers, the ranker and the cues alike.
class Lexicon {
 public:
  void Add(absl::string_view word);
  bool Contains(absl::string_view word) const { return words_.contains(word); }
  // Longest word, in code points.
  int max_length() const { return max_length_; }

  // Reads `variant` as `canonical`. A Latin variant is one word (lower
  // case) and its canonical form one or more words; a Chinese variant is
  // replaced wherever it occurs in a run of Chinese characters, by Chinese
  // characters. Returns false (and adds nothing) for any other shape.
  bool AddSpelling(absl::string_view variant, absl::string_view canonical);
  // The canonical form of a Latin word, or null.
  const std::string* Spelling(const std::string& word) const;
  // Chinese variants, longest first tried; their longest, in code points.
  const absl::flat_hash_map<std::u32string, std::u32string>& chinese_spellings() const {
    return chinese_spellings_;
  }
  int max_chinese_variant() const { return max_chinese_variant_; }

 private:
  absl::flat_hash_set<std::string> words_;
  int max_length_ = 0;
  absl::flat_hash_map<std::string, std::string> latin_spellings_;
  absl::flat_hash_map<std::u32string, std::u32string> chinese_spellings_;
  int max_chinese_variant_ = 0;
};

// Analyses valid UTF-8 `text` (callers validate first; invalid bytes are
// treated as separators). `lexicon` may be null.
Analysis Analyze(absl::string_view text, const Lexicon* lexicon);

// The light English stemmer used for every English word.
std::string Stem(absl::string_view word);

// "zh-CN" when the text is mostly Chinese, "en" when mostly Latin words,
// empty when it gives no clue (only digits, emoji or punctuation).
std::string DetectLanguage(const Analysis& analysis);

// Maps a BCP 47 tag to the reply languages the bot has: "zh-CN" for any
// Chinese tag, "en" otherwise (and for empty).
std::string ReplyLanguageFor(absl::string_view tag);

// Damerau-Levenshtein distance (optimal string alignment) of two byte
// strings, stopping early above `limit` (returns limit + 1 then).
int EditDistance(absl::string_view a, absl::string_view b, int limit);

}  // namespace switchboard::bot
