#include "services/bot/safety.h"

#include <algorithm>
#include <vector>

namespace switchboard::bot {

float SafetyVerdict::SensitiveProbability(int intent) const {
  for (const auto& [i, p] : sensitive_probabilities) {
    if (i == intent) return p;
  }
  return 0;
}

SafetyVerdict CheckSafety(const KnowledgeBase& kb, const Analysis& analysis,
                          const SafetyOptions& options) {
  SafetyVerdict verdict;
  float best_handoff = 0;
  // Text with no word the model was trained on (gibberish) would get an
  // arbitrary answer from it; cues still apply.
  if (kb.safety_model != nullptr && kb.safety_model->KnownTokens(analysis.tokens) > 0) {
    for (const auto& [label, p] :
         kb.safety_model->Predict(analysis.tokens, kb.safety_model->labels())) {
      if (label == KnowledgeBase::kHumanLabel) {
        verdict.human_probability = p;
        continue;
      }
      const int slot = label - KnowledgeBase::kHumanLabel - 1;
      if (slot < 0 || slot >= static_cast<int>(kb.escalating.size())) continue;
      const int intent = kb.escalating[slot];
      if (kb.intents[intent].sensitive) {
        verdict.sensitive_probability += p;
        verdict.sensitive_probabilities.emplace_back(intent, p);  // Predict sorts
      } else if (p > best_handoff) {
        best_handoff = p;
        verdict.handoff = intent;
        verdict.handoff_probability = p;
      }
    }
  }
  verdict.human = verdict.human_probability >= options.human_threshold;
  verdict.sensitive = verdict.sensitive_probability >= options.sensitive_threshold;
  if (verdict.handoff_probability < options.handoff_threshold) verdict.handoff = -1;
  for (const SafetyCue& cue : kb.cues) {
    if (!cue.cue.Matches(analysis)) continue;
    if (cue.intent < 0) {
      verdict.human = true;
      verdict.human_by_cue = true;
    } else if (kb.intents[cue.intent].sensitive) {
      verdict.sensitive = true;
      if (std::find(verdict.sensitive_cues.begin(), verdict.sensitive_cues.end(), cue.intent) ==
          verdict.sensitive_cues.end()) {
        verdict.sensitive_cues.push_back(cue.intent);
      }
    } else if (!verdict.handoff_by_cue) {
      verdict.handoff = cue.intent;
      verdict.handoff_by_cue = true;
    }
  }
  return verdict;
}

}  // namespace switchboard::bot
