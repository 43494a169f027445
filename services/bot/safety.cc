#include "services/bot/safety.h"

#include <vector>

namespace switchboard::bot {

SafetyVerdict CheckSafety(const KnowledgeBase& kb, const Analysis& analysis,
                          const SafetyOptions& options) {
  SafetyVerdict verdict;
  float best_sensitive = 0, best_handoff = 0;
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
        if (p > best_sensitive) {
          best_sensitive = p;
          verdict.sensitive = intent;
        }
      } else if (p > best_handoff) {
        best_handoff = p;
        verdict.handoff = intent;
        verdict.handoff_probability = p;
      }
    }
  }
  verdict.human = verdict.human_probability >= options.human_threshold;
  if (verdict.sensitive_probability < options.sensitive_threshold) verdict.sensitive = -1;
  if (verdict.handoff_probability < options.handoff_threshold) verdict.handoff = -1;
  bool handoff_cue = false;
  for (const SafetyCue& cue : kb.cues) {
    if (!cue.cue.Matches(analysis)) continue;
    if (cue.intent < 0) {
      verdict.human = true;
    } else if (kb.intents[cue.intent].sensitive) {
      // A cue is more specific than the model: the first matching one names
      // the intent.
      if (!verdict.sensitive_by_cue) verdict.sensitive = cue.intent;
      verdict.sensitive_by_cue = true;
    } else if (!handoff_cue) {
      verdict.handoff = cue.intent;
      handoff_cue = true;
    }
  }
  return verdict;
}

}  // namespace switchboard::bot
