#include "services/bot/ranker.h"

#include <algorithm>
#include <cmath>

namespace switchboard::bot {
namespace {

// BM25's match quality: a logistic function of how much of the query's
// weight the best phrasing covered, shared among close rivals by a softmax
// over relative scores.
constexpr float kCoverageSlope = 9.f;
constexpr float kCoverageCenter = 0.35f;
constexpr float kSoftmaxTemperature = 0.15f;  // relative to the top score

float MatchQuality(float coverage) {
  return 1.f / (1.f + std::exp(-kCoverageSlope * (coverage - kCoverageCenter)));
}

}  // namespace

Ranking RankIntents(const KnowledgeBase& kb, const Analysis& analysis,
                    absl::FunctionRef<float(int)> boost, const RankOptions& options) {
  Ranking ranking;
  const std::vector<Candidate> bm25 =
      kb.index.Rank(analysis.terms, options.depth, [](int) { return 1.f; });
  const bool known = !bm25.empty() || (kb.intent_model != nullptr &&
                                       kb.intent_model->KnownTokens(analysis.tokens) > 0);
  if (!known) return ranking;

  // Mixed probabilities, by intent (few candidates: a linear scan is
  // cheaper than a map).
  std::vector<RankedIntent> mixed;
  auto add = [&mixed](int intent, float p) {
    for (RankedIntent& r : mixed) {
      if (r.intent == intent) {
        r.confidence += p;
        return;
      }
    }
    mixed.push_back({intent, p});
  };
  // The classifier says whether the text is about any intent (its "no
  // intent" class is trained on off-topic text) and which; BM25 only which,
  // with a say that shrinks with how little of the text it matched. So
  // BM25's low coverage of a long message never makes it "no intent".
  float intent_mass = 1.f;
  std::vector<std::pair<int, float>> model;
  if (kb.intent_model != nullptr) {
    intent_mass = 0;
    for (const auto& [label, p] : kb.intent_model->Predict(analysis.tokens, options.depth)) {
      if (label >= kb.NoIntent()) continue;
      model.emplace_back(label, p);
      intent_mass += p;
    }
  }
  float model_weight = model.empty() ? 0.f : options.model_weight;
  float bm25_weight = 0;
  if (!bm25.empty()) {
    bm25_weight = (1.f - options.model_weight) * MatchQuality(bm25[0].coverage);
    if (kb.intent_model == nullptr) intent_mass = MatchQuality(bm25[0].coverage);
  }
  const float weights = model_weight + bm25_weight;
  if (weights > 0 && intent_mass > 0) {
    for (const auto& [label, p] : model) {
      add(label, intent_mass * (model_weight / weights) * (p / intent_mass));
    }
    if (bm25_weight > 0) {
      const float temperature = std::max(kSoftmaxTemperature * bm25[0].score, 1e-6f);
      float sum = 0;
      for (const Candidate& c : bm25) sum += std::exp((c.score - bm25[0].score) / temperature);
      for (const Candidate& c : bm25) {
        add(c.intent, intent_mass * (bm25_weight / weights) *
                          std::exp((c.score - bm25[0].score) / temperature) / sum);
      }
    }
  }
  float intents_mass = 0;
  for (const RankedIntent& r : mixed) intents_mass += r.confidence;
  const float none = std::max(0.f, 1.f - intents_mass);
  auto by_confidence = [](const RankedIntent& a, const RankedIntent& b) {
    return a.confidence != b.confidence ? a.confidence > b.confidence : a.intent < b.intent;
  };
  std::sort(mixed.begin(), mixed.end(), by_confidence);
  if (!mixed.empty()) ranking.unboosted_top = mixed[0].intent;

  float total = none;
  for (RankedIntent& r : mixed) {
    r.confidence *= boost(r.intent);
    total += r.confidence;
  }
  if (total <= 0) return ranking;
  for (RankedIntent& r : mixed) r.confidence /= total;
  std::sort(mixed.begin(), mixed.end(), by_confidence);
  ranking.none = none / total;
  ranking.intents = std::move(mixed);
  return ranking;
}

}  // namespace switchboard::bot
