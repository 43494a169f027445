#pragma once

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
  // The customer asks for a human.
  bool human = false;
  // A sensitive intent the text is about (account takeover, frozen or
  // missing funds), or -1.
  int sensitive = -1;
  // Whether a cue (rather than the model alone) found `sensitive`.
  bool sensitive_by_cue = false;
  // A handoff intent (a complaint), or -1.
  int handoff = -1;
  // The safety model's probabilities: of a human request, of the sensitive
  // intents together, of the handoff intent found. A cue's finding stands
  // even when they are low.
  float human_probability = 0;
  float sensitive_probability = 0;
  float handoff_probability = 0;
};

// The safety layer: checks a message for what must reach a human, before
// and regardless of intent matching, with the base's safety model (trained
// on its human requests and on the phrasings of its sensitive and handoff
// intents against every other phrasing) and its cues. Either finding is
// enough. Thread-safe.
SafetyVerdict CheckSafety(const KnowledgeBase& kb, const Analysis& analysis,
                          const SafetyOptions& options);

}  // namespace switchboard::bot
