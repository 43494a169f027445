#pragma once

#include <utility>
#include <vector>

#include "services/bot/knowledge_base.h"
#include "services/bot/text.h"

namespace switchboard::bot {

struct SafetyOptions {
  // Probability of the safety model above which a text asks for a human.
  float human_threshold = 0.4f;
  // Summed probability of the sensitive intents above which a text is about
  // one of them. Cues and the intent ranking (BotOptions) back it up.
  float sensitive_threshold = 0.5f;
  // Probability of a handoff intent (a complaint) above which it is one.
  float handoff_threshold = 0.5f;
};

// What the safety layer found in one message.
struct SafetyVerdict {
  // The customer asks for a human (the model or a cue); whether a cue did.
  bool human = false;
  bool human_by_cue = false;
  // The text is about a sensitive topic (account takeover, frozen or
  // missing funds): a cue matched, or the model's sensitive intents
  // together reach the threshold.
  bool sensitive = false;
  // The sensitive intents whose cue matched, in the base's cue order: a cue
  // is explicit, so one of them is the topic.
  std::vector<int> sensitive_cues;
  // The safety model's probability of each sensitive intent (index into
  // the base's intents), highest first.
  std::vector<std::pair<int, float>> sensitive_probabilities;
  // A handoff intent (a complaint), or -1; whether a cue found it.
  int handoff = -1;
  bool handoff_by_cue = false;
  // The safety model's probabilities: of a human request, of the sensitive
  // intents together, of the handoff intent found. A cue's finding stands
  // even when they are low.
  float human_probability = 0;
  float sensitive_probability = 0;
  float handoff_probability = 0;

  bool sensitive_by_cue() const { return !sensitive_cues.empty(); }
  // The model's probability of sensitive intent `intent` (0 if none).
  float SensitiveProbability(int intent) const;
};

// The safety layer: checks a message for what must reach a human, before
// and regardless of intent matching, with the base's safety model (trained
// on its human requests and on the phrasings of its sensitive and handoff
// intents against every other phrasing) and its cues. Either finding is
// enough. Thread-safe.
SafetyVerdict CheckSafety(const KnowledgeBase& kb, const Analysis& analysis,
                          const SafetyOptions& options);

}  // namespace switchboard::bot
