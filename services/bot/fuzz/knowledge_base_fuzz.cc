// Fuzzes the knowledge base parser (ParseKnowledgeBase): the file a
// supervisor edits and puts in service with ReloadKnowledgeBase. The input is
// the file's content. Parsing must succeed or fail with FAILED_PRECONDITION
// naming the file and line; a base that parses is consistent (intents
// sorted, indexed by id, references and cues resolved, models trained).
// Models are trained with tiny options: the parser, not fastText, is under
// test.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "services/bot/knowledge_base.h"

namespace {

using namespace switchboard::bot;

void Check(bool ok) {
  if (!ok) abort();
}

ModelOptions TinyModels() {
  ModelOptions options;
  for (TextClassifier::Options* o : {&options.intent, &options.safety}) {
    o->dim = 4;
    o->epochs = 1;
    o->min_epochs = 1;
    o->buckets = 1000;
    o->word_ngrams = 1;
  }
  return options;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ModelOptions* options = new ModelOptions(TinyModels());
  const absl::string_view content(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::shared_ptr<const KnowledgeBase>> kb =
      ParseKnowledgeBase("fuzz.kb", content, *options);
  if (!kb.ok()) {
    Check(kb.status().code() == absl::StatusCode::kFailedPrecondition ||
          kb.status().code() == absl::StatusCode::kInternal);
    if (kb.status().code() == absl::StatusCode::kFailedPrecondition) {
      Check(absl::StartsWith(kb.status().message(), "fuzz.kb:"));
    }
    return 0;
  }
  const KnowledgeBase& base = **kb;
  Check(!base.intents.empty() && base.intent_model != nullptr);
  Check(base.by_id.size() == base.intents.size());
  for (size_t i = 0; i < base.intents.size(); ++i) {
    const IntentSpec& intent = base.intents[i];
    Check(base.Find(intent.id) == &intent);
    Check(i == 0 || base.intents[i - 1].id < intent.id);
    Check(intent.category != switchboard::common::v1::CATEGORY_UNSPECIFIED);
    for (int l = 0; l < kLanguages; ++l) {
      Check(!intent.titles[l].empty() && !intent.answers[l].empty());
    }
    for (const std::string& follow_up : intent.follow_ups) Check(base.Find(follow_up) != nullptr);
  }
  for (const SafetyCue& cue : base.cues) {
    if (cue.intent == -1) continue;
    Check(cue.intent >= 0 && cue.intent < base.NoIntent());
    Check(base.intents[cue.intent].sensitive || base.intents[cue.intent].handoff);
  }
  for (int intent : base.escalating) {
    Check(intent >= 0 && intent < base.NoIntent());
  }
  Check((base.safety_model != nullptr) ==
        (!base.human_requests.empty() || !base.escalating.empty()));
  return 0;
}
