#pragma once

#include <vector>

#include "absl/functional/function_ref.h"
#include "services/bot/knowledge_base.h"
#include "services/bot/text.h"

namespace switchboard::bot {

struct RankOptions {
  // Weight of the learned classifier's probability against the BM25
  // ranker's calibrated match quality. The classifier generalises to new
  // phrasings; BM25 keeps exact domain terms (asset names, "memo") and
  // typo-corrected words strong when the classifier hesitates.
  float model_weight = 0.6f;
  // Candidates considered from each ranker.
  int depth = 8;
};

struct RankedIntent {
  int intent = 0;
  // Probability that the text means this intent, in [0, 1].
  float confidence = 0;
};

// What a text means, as a distribution over the base's intents and "no
// intent".
struct Ranking {
  // Highest confidence first; the confidences and `none` sum to 1.
  std::vector<RankedIntent> intents;
  // Probability that the text means no intent of the base (off-topic,
  // noise).
  float none = 1;
  // The top intent before context boosts (-1 if none): a different top
  // after them means the context decided.
  int unboosted_top = -1;
};

// Ranks the base's intents for `analysis`: the classifier's probabilities
// mixed with BM25's, then multiplied by `boost(intent)` (dialogue context;
// 1 for none) and renormalised with "no intent". A text without any token
// the base knows gets no intents (`none` 1): there is no evidence to rank
// on.
Ranking RankIntents(const KnowledgeBase& kb, const Analysis& analysis,
                    absl::FunctionRef<float(int)> boost, const RankOptions& options);

}  // namespace switchboard::bot
