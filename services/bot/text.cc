#include "services/bot/text.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace switchboard::bot {
namespace {

constexpr char32_t kInvalid = 0xFFFD;

// Decodes one code point at `pos`, advancing it; kInvalid for a bad byte.
char32_t Decode(absl::string_view s, size_t& pos) {
  const auto b0 = static_cast<uint8_t>(s[pos]);
  int length = 0;
  char32_t cp = 0;
  if (b0 < 0x80) {
    ++pos;
    return b0;
  } else if ((b0 & 0xE0) == 0xC0) {
    length = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    length = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    length = 4;
    cp = b0 & 0x07;
  } else {
    ++pos;
    return kInvalid;
  }
  if (pos + length > s.size()) {
    ++pos;
    return kInvalid;
  }
  for (int i = 1; i < length; ++i) {
    const auto b = static_cast<uint8_t>(s[pos + i]);
    if ((b & 0xC0) != 0x80) {
      ++pos;
      return kInvalid;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  pos += length;
  return cp;
}

void Encode(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsCjk(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x2A6DF);
}

// Latin letters including Latin-1 and Latin Extended-A accented ones.
bool IsLatinLetter(char32_t cp) {
  return (cp >= 'a' && cp <= 'z') || (cp >= 0xC0 && cp <= 0x17F && cp != 0xD7 && cp != 0xF7);
}

char32_t Fold(char32_t cp) {
  if (cp >= 0xFF01 && cp <= 0xFF5E) cp -= 0xFEE0;  // full-width ASCII
  if (cp == 0x3000) cp = ' ';
  if (cp >= 'A' && cp <= 'Z') cp += 'a' - 'A';
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) cp += 0x20;  // Latin-1 upper
  if (cp == 0x2019 || cp == 0x2018) cp = '\'';             // curly apostrophes
  return cp;
}

const absl::flat_hash_set<std::string>& EnglishStopWords() {
  static const auto* words = new absl::flat_hash_set<std::string>{
      "a",    "an",    "the",  "i",     "im",   "ive",  "id",     "me",   "my",
      "mine", "is",    "are",  "was",   "were", "be",   "been",   "am",   "to",
      "of",   "in",    "on",   "at",    "for",  "it",   "its",    "and",  "or",
      "do",   "does",  "did",  "so",    "this", "that", "these",  "those", "with",
      "you",  "your",  "we",   "our",   "us",   "please", "pls",  "plz",   "just",
      "some", "any",   "there", "here",
      "would", "could", "should", "will", "shall", "as",  "by",    "from", "about",
      "u",    "ur",    "yet",  "also",  "very", "really", "then", "than", "if",
      "what", "whats", "how",  "why",   "when", "where", "which", "who",  "can",
      "get",  "got",   "want", "need",  "know", "tell",
  };
  return *words;
}

// Stop words that still tell the classifier something: a question from a
// complaint, a how-to from a problem.
bool ClassifierKeeps(const std::string& word) {
  static const auto* words = new absl::flat_hash_set<std::string>{
      "how", "why", "what", "where", "when", "can", "want", "need", "you", "me", "my", "your"};
  return words->contains(word);
}

// Function characters too common to be evidence as unigrams (bigrams that
// contain them still count).
bool IsStopChar(char32_t cp) {
  static const std::u32string kStop =
      U"的了吗呢吧啊呀我你您他她它是在有就也都和与及请问一个这那么么么着过给把被让";
  return kStop.find(cp) != std::u32string::npos;
}

bool EndsWith(const std::string& s, absl::string_view suffix) {
  return absl::EndsWith(s, suffix);
}

}  // namespace

void Lexicon::Add(absl::string_view word) {
  size_t pos = 0;
  int length = 0;
  while (pos < word.size()) {
    Decode(word, pos);
    ++length;
  }
  if (length < 2) return;
  words_.insert(std::string(word));
  max_length_ = std::max(max_length_, length);
}

bool Lexicon::AddSpelling(absl::string_view variant, absl::string_view canonical) {
  bool variant_latin = !variant.empty(), canonical_latin = !canonical.empty();
  std::u32string variant_cjk, canonical_cjk;
  for (size_t pos = 0; pos < variant.size();) {
    const char32_t cp = Decode(variant, pos);
    if (IsCjk(cp)) {
      variant_cjk.push_back(cp);
      variant_latin = false;
    } else if (!((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9'))) {
      return false;
    }
  }
  for (size_t pos = 0; pos < canonical.size();) {
    const char32_t cp = Decode(canonical, pos);
    if (IsCjk(cp)) {
      canonical_cjk.push_back(cp);
      canonical_latin = false;
    } else if (!((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') || cp == ' ')) {
      return false;
    }
  }
  if (variant_latin && canonical_latin) {
    latin_spellings_[std::string(variant)] = std::string(canonical);
    return true;
  }
  if (variant_cjk.size() * 3 != variant.size() || canonical_cjk.size() * 3 != canonical.size() ||
      variant_cjk.empty() || canonical_cjk.empty()) {
    return false;  // mixed scripts, or characters outside the basic plane
  }
  max_chinese_variant_ = std::max(max_chinese_variant_, static_cast<int>(variant_cjk.size()));
  chinese_spellings_[variant_cjk] = canonical_cjk;
  return true;
}

const std::string* Lexicon::Spelling(const std::string& word) const {
  auto it = latin_spellings_.find(word);
  return it == latin_spellings_.end() ? nullptr : &it->second;
}

std::string Stem(absl::string_view word) {
  std::string w(word);
  if (w.size() > 3 && EndsWith(w, "s") && w[w.size() - 2] == '\'') w.resize(w.size() - 2);
  if (w.size() > 5 && EndsWith(w, "ing")) {
    w.resize(w.size() - 3);
  } else if (w.size() > 4 && (EndsWith(w, "ies") || EndsWith(w, "ied"))) {
    w.resize(w.size() - 3);
    w += "y";
  } else if (w.size() > 4 && (EndsWith(w, "sses") || EndsWith(w, "xes") ||
                              EndsWith(w, "ches") || EndsWith(w, "shes"))) {
    w.resize(w.size() - 2);
  } else if (w.size() > 3 && EndsWith(w, "s") && !EndsWith(w, "ss") &&
             !EndsWith(w, "us")) {
    w.resize(w.size() - 1);
  } else if (w.size() > 4 && EndsWith(w, "ed")) {
    w.resize(w.size() - 2);
  }
  if (w.size() >= 8 && EndsWith(w, "al")) w.resize(w.size() - 2);
  if (w.size() > 4 && EndsWith(w, "e")) w.resize(w.size() - 1);
  return w;
}

Analysis Analyze(absl::string_view text, const Lexicon* lexicon) {
  Analysis out;
  std::u32string run;  // current CJK run
  std::string word;    // current Latin/digit word (UTF-8)
  bool word_has_letter = false;

  // Stop words dropped from `tokens`, in case nothing else is left.
  std::string stop_tokens;
  // One word as read, after spelling: into words, tokens and terms.
  std::string previous_word;
  auto add_word = [&](const std::string& w, bool has_letter) {
    if (has_letter) ++out.latin_words;
    // A word said twice in a row ("ok ok", "thanks thanks") is read once.
    if (w == previous_word) return;
    previous_word = w;
    std::string stemmed = Stem(w);
    out.words.push_back(stemmed);
    const bool status = !has_letter && w.size() == 3 && w[0] >= '4' && w[0] <= '5';
    std::string token = w.size() > 24               ? "<id>"
                        : !has_letter && !status ? "<num>"
                                                 : stemmed;
    // Function words only blur the average the classifier takes.
    if (!EnglishStopWords().contains(w) || ClassifierKeeps(w)) {
      if (!out.tokens.empty()) out.tokens += ' ';
      out.tokens += token;
    } else {
      if (!stop_tokens.empty()) stop_tokens += ' ';
      stop_tokens += token;
    }
    // Numbers and long tokens (transaction ids, addresses) say nothing about
    // the intent; they would only dilute the match. Three-digit numbers are
    // kept: status codes (429, 502) name a problem.
    const bool identifier = (!has_letter && w.size() != 3) || w.size() > 24;
    if (!identifier && !EnglishStopWords().contains(w)) {
      out.terms.push_back({"e:" + stemmed, 1.0f});
    }
  };
  auto add_spelled = [&](const std::string& w, bool has_letter) {
    const std::string* canonical = lexicon != nullptr ? lexicon->Spelling(w) : nullptr;
    if (canonical == nullptr) return add_word(w, has_letter);
    for (absl::string_view part : absl::StrSplit(*canonical, ' ', absl::SkipEmpty())) {
      add_word(std::string(part), true);
    }
  };
  auto flush_word = [&] {
    if (word.empty()) return;
    // An amount with its unit ("500u", "20k"): the number, then the unit.
    // One digit before letters is a name ("2fa", "3q").
    size_t digits = 0;
    while (digits < word.size() && word[digits] >= '0' && word[digits] <= '9') ++digits;
    if (word_has_letter && digits >= 2 && digits < word.size() &&
        std::all_of(word.begin() + digits, word.end(),
                    [](char c) { return c < '0' || c > '9'; })) {
      add_word(word.substr(0, digits), false);
      const std::string unit = word.substr(digits);
      add_spelled(unit == "u" ? "usdt" : unit, true);
    } else {
      add_spelled(word, word_has_letter);
    }
    word.clear();
    word_has_letter = false;
  };
  auto flush_run = [&] {
    if (run.empty()) return;
    // A run that repeats one unit ("收到收到", "好的好的", "人工人工人工")
    // says the unit once, louder: read it once.
    for (size_t period = 1; period <= run.size() / 2; ++period) {
      if (run.size() % period != 0) continue;
      bool repeats = true;
      for (size_t i = period; i < run.size() && repeats; ++i) repeats = run[i] == run[i - period];
      if (repeats) {
        run.resize(period);
        break;
      }
    }
    if (lexicon != nullptr && lexicon->max_chinese_variant() > 0) {
      // Spellings, longest variant first at each position.
      std::u32string spelled;
      for (size_t i = 0; i < run.size();) {
        size_t matched = 0;
        for (size_t n = std::min<size_t>(lexicon->max_chinese_variant(), run.size() - i); n > 0;
             --n) {
          auto it = lexicon->chinese_spellings().find(run.substr(i, n));
          if (it != lexicon->chinese_spellings().end()) {
            spelled += it->second;
            matched = n;
            break;
          }
        }
        if (matched == 0) {
          spelled.push_back(run[i]);
          matched = 1;
        }
        i += matched;
      }
      run = std::move(spelled);
    }
    out.cjk_chars += static_cast<int>(run.size());
    // Classifier tokens: the run's character bigrams (a lone character
    // stands for itself), the fallback word segmentation.
    for (size_t i = 0; i + 1 < run.size() || (i == 0 && run.size() == 1); ++i) {
      if (!out.tokens.empty()) out.tokens += ' ';
      Encode(run[i], out.tokens);
      if (i + 1 < run.size()) Encode(run[i + 1], out.tokens);
    }
    for (size_t i = 0; i < run.size(); ++i) {
      Encode(run[i], out.cjk);
      if (!IsStopChar(run[i])) {
        std::string t = "c:";
        Encode(run[i], t);
        out.terms.push_back({std::move(t), 0.3f});
      }
      if (i + 1 < run.size()) {
        std::string t = "b:";
        Encode(run[i], t);
        Encode(run[i + 1], t);
        out.terms.push_back({std::move(t), 1.0f});
      }
      if (lexicon != nullptr) {
        std::string candidate;
        Encode(run[i], candidate);
        for (size_t j = i + 1; j < run.size() && static_cast<int>(j - i) < lexicon->max_length(); ++j) {
          Encode(run[j], candidate);
          if (lexicon->Contains(candidate)) out.terms.push_back({"w:" + candidate, 1.2f});
        }
      }
    }
    run.clear();
  };

  size_t pos = 0;
  while (pos < text.size()) {
    const char32_t cp = Fold(Decode(text, pos));
    if (IsCjk(cp)) {
      flush_word();
      run.push_back(cp);
    } else if (IsLatinLetter(cp) || (cp >= '0' && cp <= '9')) {
      flush_run();
      Encode(cp, word);
      if (cp > '9') word_has_letter = true;
    } else if (cp == '\'' && !word.empty()) {
      // Inside a word ("hasn't"): dropped, the word goes on.
    } else {
      flush_word();
      flush_run();
    }
  }
  flush_word();
  flush_run();
  if (out.tokens.empty()) out.tokens = std::move(stop_tokens);
  return out;
}

std::string DetectLanguage(const Analysis& analysis) {
  if (analysis.cjk_chars > 0 && analysis.cjk_chars >= analysis.latin_words) return "zh-CN";
  if (analysis.latin_words > 0) return "en";
  return "";
}

std::string ReplyLanguageFor(absl::string_view tag) {
  std::string lower = absl::AsciiStrToLower(tag);
  if (lower == "zh" || absl::StartsWith(lower, "zh-") || absl::StartsWith(lower, "zh_")) {
    return "zh-CN";
  }
  return "en";
}

int EditDistance(absl::string_view a, absl::string_view b, int limit) {
  const int n = static_cast<int>(a.size());
  const int m = static_cast<int>(b.size());
  if (std::abs(n - m) > limit) return limit + 1;
  std::vector<int> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (int j = 0; j <= m; ++j) prev[j] = j;
  for (int i = 1; i <= n; ++i) {
    cur[0] = i;
    int row_min = cur[0];
    for (int j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
      row_min = std::min(row_min, cur[j]);
    }
    if (row_min > limit) return limit + 1;
    prev2.swap(prev);
    prev.swap(cur);
  }
  return std::min(prev[m], limit + 1);
}

}  // namespace switchboard::bot
