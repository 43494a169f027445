#include "services/bot/knowledge_base.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "libs/validation/validation.h"

namespace switchboard::bot {
namespace {

using common::v1::Category;

constexpr size_t kMaxFileBytes = 64 << 20;
constexpr size_t kMaxTitle = 40;
constexpr size_t kMaxLabel = 40;
constexpr size_t kMaxAnswer = 3000;
constexpr size_t kMaxExample = 500;
constexpr char kIntentPrefix[] = "intent:";
constexpr char kHumanQuickReply[] = "handoff:human";

// One "key: value" line (with its continuation lines folded in).
struct Entry {
  int line = 0;
  std::string key;
  std::string value;
};

class Parser {
 public:
  explicit Parser(absl::string_view name) : name_(name) {}

  absl::Status Error(int line, absl::string_view message) const {
    return absl::FailedPreconditionError(absl::StrCat(name_, ":", line, ": ", message));
  }

  absl::StatusOr<std::vector<Entry>> Split(absl::string_view content) const {
    std::vector<Entry> entries;
    int line_number = 0;
    for (absl::string_view line : absl::StrSplit(content, '\n')) {
      ++line_number;
      if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
      if (!validation::IsValidUtf8(line)) return Error(line_number, "not valid UTF-8");
      absl::string_view stripped = absl::StripAsciiWhitespace(line);
      if (stripped.empty() || absl::StartsWith(stripped, "#")) continue;
      if (line[0] == ' ' || line[0] == '\t') {
        if (entries.empty() || entries.back().key != "answer") {
          return Error(line_number,
                       "an indented line continues an answer, but no answer precedes it");
        }
        absl::StrAppend(&entries.back().value, "\n", stripped);
        continue;
      }
      size_t colon = stripped.find(':');
      if (colon == absl::string_view::npos) {
        return Error(line_number, absl::StrCat("expected \"key: value\", got \"",
                                               stripped.substr(0, 40), "\""));
      }
      Entry entry;
      entry.line = line_number;
      entry.key = std::string(absl::StripAsciiWhitespace(stripped.substr(0, colon)));
      entry.value = std::string(absl::StripAsciiWhitespace(stripped.substr(colon + 1)));
      if (entry.value.empty()) return Error(line_number, absl::StrCat(entry.key, ": empty value"));
      entries.push_back(std::move(entry));
    }
    return entries;
  }

  // "zh-CN | text" -> language and text.
  absl::StatusOr<std::pair<Language, std::string>> Localized(const Entry& e) const {
    size_t bar = e.value.find('|');
    if (bar == std::string::npos) {
      return Error(e.line, absl::StrCat(e.key, ": expected \"zh-CN | text\" or \"en | text\""));
    }
    std::string tag(absl::StripAsciiWhitespace(absl::string_view(e.value).substr(0, bar)));
    std::string text(absl::StripAsciiWhitespace(absl::string_view(e.value).substr(bar + 1)));
    Language language;
    if (tag == "zh-CN") {
      language = kZh;
    } else if (tag == "en") {
      language = kEn;
    } else {
      return Error(e.line, absl::StrCat(e.key, ": unknown language \"", tag,
                                        "\" (use zh-CN or en)"));
    }
    if (text.empty()) return Error(e.line, absl::StrCat(e.key, ": empty text"));
    return std::make_pair(language, std::move(text));
  }

 private:
  std::string name_;
};

absl::StatusOr<Category> ParseCategory(absl::string_view value) {
  const std::string name = absl::StrCat("CATEGORY_", absl::AsciiStrToUpper(value));
  Category category;
  if (!common::v1::Category_Parse(name, &category) ||
      category == common::v1::CATEGORY_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown category \"", value,
        "\" (use account_security, deposit, withdrawal, trading, kyc, technical, "
        "frozen_funds or general)"));
  }
  return category;
}

bool IsIntentId(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string Fnv1a64(absl::string_view content) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : content) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ULL;
  }
  return absl::StrFormat("%016x", hash);
}

std::string Fingerprint(const TextClassifier::Options& o) {
  return absl::StrFormat("%d/%d/%d/%g/%d/%d/%d/%d/%d/%d", o.dim, o.epochs, o.min_epochs,
                         o.learning_rate, o.word_ngrams, o.min_char_ngram, o.max_char_ngram,
                         o.buckets, o.seed, o.max_softmax_labels);
}

// The last base built: training is deterministic, so the same content with
// the same options always builds the same base, and a reload of an
// unchanged file (or a test's tenth bot over the same file) reuses it.
struct LastBuilt {
  absl::Mutex mu;
  std::string key ABSL_GUARDED_BY(mu);
  std::shared_ptr<const KnowledgeBase> kb ABSL_GUARDED_BY(mu);
};

LastBuilt& Cache() {
  static auto* cache = new LastBuilt;
  return *cache;
}

constexpr absl::string_view kModelsMagic = "switchboard-bot-models 1\n";

// The parts of SerializeModels' blob: the key, then the intent and safety
// models (the latter empty when the base has none).
struct ModelBlob {
  absl::string_view key;
  absl::string_view intent;
  absl::string_view safety;
};

void AppendLength(std::string& out, uint64_t length) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
}

bool ReadLength(absl::string_view& in, uint64_t& length) {
  if (in.size() < 8) return false;
  length = 0;
  for (int i = 0; i < 8; ++i) length |= static_cast<uint64_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  in.remove_prefix(8);
  return true;
}

std::optional<ModelBlob> ReadModelBlob(absl::string_view blob) {
  if (!absl::ConsumePrefix(&blob, kModelsMagic)) return std::nullopt;
  ModelBlob parts;
  absl::string_view* fields[] = {&parts.key, &parts.intent, &parts.safety};
  for (absl::string_view* field : fields) {
    uint64_t length = 0;
    if (!ReadLength(blob, length) || length > blob.size()) return std::nullopt;
    *field = blob.substr(0, length);
    blob.remove_prefix(length);
  }
  if (!blob.empty()) return std::nullopt;
  return parts;
}

}  // namespace

const char* LanguageTag(Language language) { return language == kZh ? "zh-CN" : "en"; }

Language LanguageOf(absl::string_view reply_tag) { return reply_tag == "zh-CN" ? kZh : kEn; }

const IntentSpec* KnowledgeBase::Find(absl::string_view id) const {
  auto it = by_id.find(id);
  return it == by_id.end() ? nullptr : &intents[it->second];
}

std::string ModelKey(absl::string_view content, const ModelOptions& options) {
  return absl::StrCat(Fnv1a64(content), ":", content.size(), ":", Fingerprint(options.intent),
                      ":", Fingerprint(options.safety));
}

absl::StatusOr<std::string> SerializeModels(const KnowledgeBase& kb) {
  std::string out(kModelsMagic);
  AppendLength(out, kb.model_key.size());
  out += kb.model_key;
  for (const auto* model : {kb.intent_model.get(), kb.safety_model.get()}) {
    std::string bytes;
    if (model != nullptr) {
      absl::StatusOr<std::string> serialized = model->Serialize();
      if (!serialized.ok()) return serialized.status();
      bytes = *std::move(serialized);
    }
    AppendLength(out, bytes.size());
    out += bytes;
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const KnowledgeBase>> ParseKnowledgeBase(
    absl::string_view name, absl::string_view content, const ModelOptions& options,
    absl::string_view prebuilt) {
  if (content.size() > kMaxFileBytes) {
    return absl::FailedPreconditionError(absl::StrCat(name, ": larger than 64 MiB"));
  }
  const std::string key = ModelKey(content, options);
  {
    absl::MutexLock lock(&Cache().mu);
    if (Cache().kb != nullptr && Cache().key == key) return Cache().kb;
  }
  Parser parser(name);
  absl::StatusOr<std::vector<Entry>> entries = parser.Split(content);
  if (!entries.ok()) return entries.status();

  auto kb = std::make_shared<KnowledgeBase>();
  kb->version = KnowledgeBaseVersion(content);
  kb->model_key = key;
  // Cues to parse once every spelling and intent is known: line, label,
  // pattern.
  std::vector<std::tuple<int, std::string, std::string>> cues;
  // References to check once every intent is known: line, target.
  std::vector<std::pair<int, std::string>> references;
  IntentSpec* current = nullptr;
  absl::flat_hash_map<std::string, int> lines_of;

  auto finish_intent = [&]() -> absl::Status {
    if (current == nullptr) return absl::OkStatus();
    const IntentSpec& i = *current;
    auto fail = [&](absl::string_view what) {
      return parser.Error(i.line, absl::StrCat("intent '", i.id, "' ", what));
    };
    if (i.category == common::v1::CATEGORY_UNSPECIFIED) return fail("has no category");
    for (Language l : {kZh, kEn}) {
      if (i.titles[l].empty()) return fail(absl::StrCat("has no ", LanguageTag(l), " title"));
      if (i.answers[l].empty()) return fail(absl::StrCat("has no ", LanguageTag(l), " answer"));
      if (std::none_of(i.examples.begin(), i.examples.end(),
                       [l](const auto& e) { return e.first == l; })) {
        return fail(absl::StrCat("has no ", LanguageTag(l), " example"));
      }
    }
    return absl::OkStatus();
  };

  for (const Entry& e : *entries) {
    if (e.key == "intent") {
      if (absl::Status s = finish_intent(); !s.ok()) return s;
      if (!IsIntentId(e.value)) {
        return parser.Error(e.line, absl::StrCat("intent id \"", e.value,
                                                 "\" must be 1 to 64 of a-z, 0-9 and _"));
      }
      if (auto [it, inserted] = lines_of.try_emplace(e.value, e.line); !inserted) {
        return parser.Error(e.line, absl::StrCat("intent '", e.value,
                                                 "' is defined twice (first at line ",
                                                 it->second, ")"));
      }
      current = &kb->intents.emplace_back();
      current->id = e.value;
      current->line = e.line;
      continue;
    }
    if (e.key == "human_request" || e.key == "out_of_scope" || e.key == "lexicon" ||
        e.key == "cue" || e.key == "spelling" || e.key == "filler") {
      if (current != nullptr) {
        return parser.Error(e.line, absl::StrCat(e.key, ": settings must come before the first intent"));
      }
      if (e.key == "lexicon") {
        for (absl::string_view word : absl::StrSplit(e.value, ' ', absl::SkipEmpty())) {
          kb->lexicon.Add(word);
        }
      } else if (e.key == "cue") {
        const size_t bar = e.value.find('|');
        if (bar == std::string::npos) {
          return parser.Error(e.line, "cue: expected \"<human or intent id> | <pattern>\"");
        }
        cues.emplace_back(e.line,
                          std::string(absl::StripAsciiWhitespace(e.value.substr(0, bar))),
                          e.value.substr(bar + 1));
      } else if (e.key == "spelling") {
        const size_t bar = e.value.find('|');
        const std::string canonical = absl::AsciiStrToLower(
            absl::StripAsciiWhitespace(absl::string_view(e.value).substr(0, bar)));
        if (bar == std::string::npos || canonical.empty()) {
          return parser.Error(e.line, "spelling: expected \"<canonical> | <variant> <variant> ...\"");
        }
        for (absl::string_view variant :
             absl::StrSplit(absl::string_view(e.value).substr(bar + 1), ' ', absl::SkipEmpty())) {
          if (!kb->lexicon.AddSpelling(absl::AsciiStrToLower(variant), canonical)) {
            return parser.Error(e.line, absl::StrCat("spelling: \"", variant, "\" -> \"", canonical,
                                                     "\": a Latin word for Latin words, or "
                                                     "Chinese for Chinese"));
          }
        }
      } else {
        auto localized = parser.Localized(e);
        if (!localized.ok()) return localized.status();
        if (validation::CountCodePoints(localized->second) > kMaxExample) {
          return parser.Error(e.line, absl::StrCat(e.key, ": at most ", kMaxExample,
                                                   " characters"));
        }
        if (e.key == "filler") {
          const size_t at = localized->second.find("...");
          if (at == std::string::npos ||
              localized->second.find("...", at + 3) != std::string::npos) {
            return parser.Error(e.line, "filler: mark where the phrasing goes with one \"...\"");
          }
        }
        (e.key == "human_request" ? kb->human_requests
         : e.key == "filler"      ? kb->fillers
                                  : kb->out_of_scope)
            .push_back({localized->first, std::move(localized->second), e.line});
      }
      continue;
    }
    if (current == nullptr) {
      return parser.Error(e.line, absl::StrCat("\"", e.key,
                                               "\" outside an intent (start one with \"intent: <id>\")"));
    }
    IntentSpec& intent = *current;
    if (e.key == "category") {
      if (intent.category != common::v1::CATEGORY_UNSPECIFIED) {
        return parser.Error(e.line, absl::StrCat("intent '", intent.id, "' has two categories"));
      }
      absl::StatusOr<Category> category = ParseCategory(e.value);
      if (!category.ok()) return parser.Error(e.line, category.status().message());
      intent.category = *category;
    } else if (e.key == "title" || e.key == "answer" || e.key == "example") {
      auto localized = parser.Localized(e);
      if (!localized.ok()) return localized.status();
      auto& [language, text] = *localized;
      const size_t length = validation::CountCodePoints(text);
      const size_t limit =
          e.key == "title" ? kMaxTitle : e.key == "answer" ? kMaxAnswer : kMaxExample;
      if (length > limit) {
        return parser.Error(e.line, absl::StrCat(e.key, ": ", length,
                                                 " characters, at most ", limit));
      }
      if (e.key == "example") {
        intent.examples.emplace_back(language, std::move(text));
        continue;
      }
      std::string& slot = e.key == "title" ? intent.titles[language] : intent.answers[language];
      if (!slot.empty()) {
        return parser.Error(e.line, absl::StrCat("intent '", intent.id, "' has a second ",
                                                 LanguageTag(language), " ", e.key));
      }
      slot = std::move(text);
    } else if (e.key == "keywords") {
      for (absl::string_view word : absl::StrSplit(e.value, ' ', absl::SkipEmpty())) {
        intent.keywords.emplace_back(word);
        kb->lexicon.Add(word);  // Latin words are ignored by the lexicon's use
      }
    } else if (e.key == "quick_reply") {
      std::vector<std::string> parts = absl::StrSplit(e.value, '|');
      if (parts.size() != 3) {
        return parser.Error(e.line, "quick_reply: expected \"<id> | <zh-CN label> | <en label>\"");
      }
      QuickReplySpec reply;
      reply.id = std::string(absl::StripAsciiWhitespace(parts[0]));
      if (!validation::ValidateId("quick_reply", reply.id, 64).ok()) {
        return parser.Error(e.line, absl::StrCat("quick_reply: id \"", reply.id,
                                                 "\" must be 1 to 64 of letters, digits and . _ - :"));
      }
      if (absl::StartsWith(reply.id, kIntentPrefix)) {
        references.emplace_back(e.line, reply.id.substr(sizeof(kIntentPrefix) - 1));
      } else if (reply.id != kHumanQuickReply) {
        return parser.Error(e.line, absl::StrCat("quick_reply: unknown id \"", reply.id,
                                                 "\" (use intent:<id> or handoff:human)"));
      }
      for (Language l : {kZh, kEn}) {
        reply.labels[l] = std::string(absl::StripAsciiWhitespace(parts[1 + l]));
        const size_t length = validation::CountCodePoints(reply.labels[l]);
        if (length == 0 || length > kMaxLabel) {
          return parser.Error(e.line, absl::StrCat("quick_reply: ", LanguageTag(l),
                                                   " label must be 1 to 40 characters"));
        }
      }
      intent.quick_replies.push_back(std::move(reply));
    } else if (e.key == "follow_up") {
      intent.follow_ups.push_back(e.value);
      references.emplace_back(e.line, e.value);
    } else if (e.key == "sensitive" || e.key == "handoff" || e.key == "small_talk") {
      if (e.value != "true" && e.value != "false") {
        return parser.Error(e.line, absl::StrCat(e.key, ": expected true or false"));
      }
      bool& flag = e.key == "sensitive" ? intent.sensitive
                   : e.key == "handoff" ? intent.handoff
                                        : intent.small_talk;
      flag = e.value == "true";
    } else {
      return parser.Error(e.line, absl::StrCat("unknown key \"", e.key, "\""));
    }
  }
  if (absl::Status s = finish_intent(); !s.ok()) return s;
  if (kb->intents.empty()) return parser.Error(1, "no intents");
  for (const auto& [line, target] : references) {
    if (!lines_of.contains(target)) {
      return parser.Error(line, absl::StrCat("refers to unknown intent '", target, "'"));
    }
  }

  std::sort(kb->intents.begin(), kb->intents.end(),
            [](const IntentSpec& a, const IntentSpec& b) { return a.id < b.id; });
  for (size_t i = 0; i < kb->intents.size(); ++i) {
    kb->by_id[kb->intents[i].id] = static_cast<int>(i);
  }
  for (auto& [line, label, pattern] : cues) {
    // Cue words are read with the base's spellings, as the text is.
    absl::StatusOr<Cue> cue = Cue::Parse(pattern, &kb->lexicon);
    if (!cue.ok()) return parser.Error(line, cue.status().message());
    int intent = -1;
    if (label != "human") {
      const IntentSpec* target = kb->Find(label);
      if (target == nullptr) {
        return parser.Error(line, absl::StrCat("cue: unknown intent '", label, "'"));
      }
      if (!target->sensitive && !target->handoff) {
        return parser.Error(line, absl::StrCat("cue: intent '", label,
                                               "' neither sensitive nor handoff; cues only "
                                               "signal escalations"));
      }
      intent = kb->by_id[label];
    }
    kb->cues.push_back({intent, *std::move(cue), line});
  }
  const std::optional<ModelBlob> blob = ReadModelBlob(prebuilt);
  if (absl::Status s = blob.has_value() && blob->key == key ? BuildModelsFrom(*kb, prebuilt)
                                                            : BuildModels(*kb, options);
      !s.ok()) {
    return s;
  }
  std::shared_ptr<const KnowledgeBase> built = std::move(kb);
  absl::MutexLock lock(&Cache().mu);
  Cache().key = key;
  Cache().kb = built;
  return built;
}

namespace {

// Indexes the base's phrasings for BM25 and collects the models' training
// examples (unless the examples are null: models are loaded).
void Prepare(KnowledgeBase& kb, std::vector<TextClassifier::Example>* intent_examples,
             std::vector<TextClassifier::Example>* safety_examples) {
  kb.index = Index();
  kb.example_count = 0;
  kb.escalating.clear();
  std::vector<int> safety_label(kb.intents.size(), KnowledgeBase::kSafeLabel);
  for (size_t i = 0; i < kb.intents.size(); ++i) {
    if (kb.intents[i].sensitive || kb.intents[i].handoff) {
      safety_label[i] = KnowledgeBase::kHumanLabel + 1 + static_cast<int>(kb.escalating.size());
      kb.escalating.push_back(static_cast<int>(i));
    }
  }
  auto train_on = [&](int intent_label, int safety, const std::string& text) {
    if (intent_examples == nullptr) return;
    Analysis analysis = Analyze(text, &kb.lexicon);
    if (analysis.tokens.empty()) return;
    intent_examples->push_back({intent_label, analysis.tokens});
    safety_examples->push_back({safety, std::move(analysis.tokens)});
  };
  // Fillers by language, taken in turn (deterministically) to wrap one copy
  // of each phrasing.
  std::array<std::vector<const std::string*>, kLanguages> fillers;
  for (const Phrasing& f : kb.fillers) fillers[f.language].push_back(&f.text);
  std::array<size_t, kLanguages> next_filler{};
  auto add = [&](int intent_label, int safety, Language language, const std::string& text,
                 bool wrap) {
    train_on(intent_label, safety, text);
    if (!wrap || fillers[language].empty()) return;
    const std::string& filler =
        *fillers[language][next_filler[language]++ % fillers[language].size()];
    const size_t at = filler.find("...");
    train_on(intent_label, safety,
             absl::StrCat(filler.substr(0, at), text, filler.substr(at + 3)));
  };
  for (size_t i = 0; i < kb.intents.size(); ++i) {
    const IntentSpec& intent = kb.intents[i];
    for (const auto& [language, text] : intent.examples) {
      kb.index.Add(static_cast<int>(i), Analyze(text, &kb.lexicon).terms);
      ++kb.example_count;
      add(static_cast<int>(i), safety_label[i], language, text, !intent.small_talk);
    }
    std::string keywords = absl::StrJoin(intent.keywords, " ");
    absl::StrAppend(&keywords, " ", intent.titles[kZh], " ", intent.titles[kEn]);
    kb.index.Add(static_cast<int>(i), Analyze(keywords, &kb.lexicon).terms);
    for (const std::string& title : intent.titles) {
      train_on(static_cast<int>(i), safety_label[i], title);
    }
  }
  kb.index.Finish();
  for (const Phrasing& p : kb.out_of_scope) {
    add(kb.NoIntent(), KnowledgeBase::kSafeLabel, p.language, p.text, true);
  }
  for (const Phrasing& p : kb.human_requests) {
    add(kb.NoIntent(), KnowledgeBase::kHumanLabel, p.language, p.text, true);
  }
}

int SafetyLabels(const KnowledgeBase& kb) {
  return KnowledgeBase::kHumanLabel + 1 + static_cast<int>(kb.escalating.size());
}

bool NeedsSafetyModel(const KnowledgeBase& kb) {
  return !kb.human_requests.empty() || !kb.escalating.empty();
}

}  // namespace

absl::Status BuildModels(KnowledgeBase& kb, const ModelOptions& options) {
  std::vector<TextClassifier::Example> intent_examples, safety_examples;
  Prepare(kb, &intent_examples, &safety_examples);
  kb.prebuilt_models = false;
  auto intent_model =
      TextClassifier::Train(intent_examples, kb.NoIntent() + 1, options.intent);
  if (!intent_model.ok()) return intent_model.status();
  kb.intent_model = *std::move(intent_model);
  kb.safety_model = nullptr;
  if (NeedsSafetyModel(kb)) {
    auto safety_model = TextClassifier::Train(safety_examples, SafetyLabels(kb), options.safety);
    if (!safety_model.ok()) return safety_model.status();
    kb.safety_model = *std::move(safety_model);
  }
  return absl::OkStatus();
}

absl::Status BuildModelsFrom(KnowledgeBase& kb, absl::string_view prebuilt) {
  const std::optional<ModelBlob> blob = ReadModelBlob(prebuilt);
  if (!blob.has_value()) return absl::InvalidArgumentError("prebuilt models: not a model blob");
  Prepare(kb, nullptr, nullptr);
  auto intent_model = TextClassifier::Load(blob->intent, kb.NoIntent() + 1);
  if (!intent_model.ok()) return intent_model.status();
  kb.intent_model = *std::move(intent_model);
  kb.safety_model = nullptr;
  if (NeedsSafetyModel(kb) != !blob->safety.empty()) {
    return absl::InvalidArgumentError("prebuilt models: the safety model does not fit the base");
  }
  if (!blob->safety.empty()) {
    auto safety_model = TextClassifier::Load(blob->safety, SafetyLabels(kb));
    if (!safety_model.ok()) return safety_model.status();
    kb.safety_model = *std::move(safety_model);
  }
  kb.prebuilt_models = true;
  return absl::OkStatus();
}

std::string KnowledgeBaseVersion(absl::string_view content) { return Fnv1a64(content); }

absl::StatusOr<std::string> ReadKnowledgeBaseFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::UnavailableError(absl::StrCat(path, ": cannot be read"));
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return absl::UnavailableError(absl::StrCat(path, ": read failed"));
  return std::move(content).str();
}

absl::StatusOr<std::shared_ptr<const KnowledgeBase>> LoadKnowledgeBase(
    const std::string& path, const ModelOptions& options, absl::string_view prebuilt) {
  absl::StatusOr<std::string> content = ReadKnowledgeBaseFile(path);
  if (!content.ok()) return content.status();
  return ParseKnowledgeBase(path, *content, options, prebuilt);
}

}  // namespace switchboard::bot
