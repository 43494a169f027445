#include "services/bot/matcher.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"

namespace switchboard::bot {
namespace {

constexpr float kK1 = 1.2f;
constexpr float kB = 0.5f;
// An intent scores as its best document plus this fraction of its second
// best: several matching phrasings are more evidence than one.
constexpr float kSecondDocument = 0.3f;
// Weight of a typo-corrected term relative to the word as written.
constexpr float kCorrectedWeight = 0.8f;
constexpr char kEnglishPrefix[] = "e:";
// Weight of a query term the index has never seen, relative to the rarest
// known term: unknown words make a query less likely to be about any intent,
// but names and ids the customer adds should not drown it.
constexpr float kUnknownWeight = 0.6f;

// Per-thread buffers sized to the largest index seen, so that Rank does not
// allocate per document.
struct Scratch {
  std::vector<float> score;
  std::vector<float> matched;
  std::vector<int> touched;
  // Per intent: its slot in the result, or -1.
  std::vector<int> best_of_intent;
  // Per result slot: the intent's second best document score.
  std::vector<float> second;
};

Scratch& ThreadScratch(size_t docs) {
  thread_local Scratch scratch;
  if (scratch.score.size() < docs) {
    scratch.score.assign(docs, 0.f);
    scratch.matched.assign(docs, 0.f);
  }
  return scratch;
}

std::vector<std::string> Deletions(const std::string& word) {
  std::vector<std::string> out;
  for (size_t i = 0; i < word.size(); ++i) {
    out.push_back(word.substr(0, i) + word.substr(i + 1));
  }
  return out;
}

}  // namespace

void Index::Add(int intent, const std::vector<Term>& terms) {
  const int doc = static_cast<int>(doc_intent_.size());
  doc_intent_.push_back(intent);
  doc_length_.push_back(static_cast<int>(terms.size()));
  intents_ = std::max(intents_, intent + 1);
  for (const Term& term : terms) {
    auto [it, inserted] = term_ids_.try_emplace(term.text, static_cast<int>(terms_.size()));
    if (inserted) {
      terms_.push_back(term.text);
      postings_.emplace_back();
    }
    std::vector<Posting>& list = postings_[it->second];
    if (!list.empty() && list.back().doc == doc) {
      ++list.back().tf;
    } else {
      list.push_back({doc, 1});
    }
  }
}

void Index::Finish() {
  const float n = static_cast<float>(doc_intent_.size());
  double total_length = 0;
  for (int length : doc_length_) total_length += length;
  const float average = n > 0 ? static_cast<float>(total_length / n) : 1.f;
  length_norm_.resize(doc_length_.size());
  for (size_t d = 0; d < doc_length_.size(); ++d) {
    length_norm_[d] = kK1 * (1 - kB + kB * doc_length_[d] / std::max(average, 1.f));
  }
  idf_.resize(postings_.size());
  for (size_t t = 0; t < postings_.size(); ++t) {
    const float df = static_cast<float>(postings_[t].size());
    idf_[t] = std::log(1.f + (n - df + 0.5f) / (df + 0.5f));
  }
  max_idf_ = std::log(1.f + (n + 0.5f) / 0.5f);
  for (size_t t = 0; t < terms_.size(); ++t) {
    if (!absl::StartsWith(terms_[t], kEnglishPrefix)) continue;
    const std::string word = terms_[t].substr(2);
    if (word.size() < 3) continue;
    deletions_[word].push_back(static_cast<int>(t));
    for (std::string& d : Deletions(word)) deletions_[d].push_back(static_cast<int>(t));
  }
}

int Index::Correct(const std::string& term) const {
  if (!absl::StartsWith(term, kEnglishPrefix)) return -1;
  const std::string word = term.substr(2);
  if (word.size() < 5) return -1;
  const int limit = word.size() >= 8 ? 2 : 1;
  int best = -1;
  auto consider = [&](const std::string& key) {
    auto it = deletions_.find(key);
    if (it == deletions_.end()) return;
    for (int t : it->second) {
      if (best >= 0 && postings_[t].size() <= postings_[best].size()) continue;
      if (EditDistance(word, absl::string_view(terms_[t]).substr(2), limit) <= limit) best = t;
    }
  };
  consider(word);
  for (const std::string& d : Deletions(word)) consider(d);
  return best;
}

std::vector<Candidate> Index::Rank(const std::vector<Term>& query, int limit,
                                   absl::FunctionRef<float(int)> boost) const {
  // Merge repeated query terms; resolve typos.
  std::vector<std::pair<int, float>> resolved;  // term id, weight
  float total = 0;
  for (const Term& term : query) {
    auto it = term_ids_.find(term.text);
    int id = it == term_ids_.end() ? -1 : it->second;
    float weight = term.weight;
    if (id < 0) {
      id = Correct(term.text);
      if (id >= 0) weight *= kCorrectedWeight;
    }
    if (id < 0) {
      total += term.weight * kUnknownWeight * max_idf_;
      continue;
    }
    total += weight * idf_[id];
    auto same = std::find_if(resolved.begin(), resolved.end(),
                             [id](const auto& r) { return r.first == id; });
    if (same != resolved.end()) {
      same->second += weight;
    } else {
      resolved.emplace_back(id, weight);
    }
  }
  std::vector<Candidate> out;
  if (resolved.empty() || total <= 0) return out;

  Scratch& scratch = ThreadScratch(doc_intent_.size());
  for (const auto& [id, weight] : resolved) {
    const float w = weight * idf_[id];
    for (const Posting& p : postings_[id]) {
      if (scratch.score[p.doc] == 0.f && scratch.matched[p.doc] == 0.f) {
        scratch.touched.push_back(p.doc);
      }
      const float tf = static_cast<float>(p.tf);
      scratch.score[p.doc] += w * tf * (kK1 + 1) / (tf + length_norm_[p.doc]);
      scratch.matched[p.doc] += w;
    }
  }
  // Best document per intent, without sorting every touched document.
  std::vector<float>& second = scratch.second;
  second.clear();
  if (scratch.best_of_intent.size() < static_cast<size_t>(intents_)) {
    scratch.best_of_intent.assign(intents_, -1);
  }
  for (int doc : scratch.touched) {
    const int intent = doc_intent_[doc];
    int& slot = scratch.best_of_intent[intent];
    const float score = scratch.score[doc];
    if (slot < 0) {
      slot = static_cast<int>(out.size());
      out.push_back({intent, score, std::min(1.f, scratch.matched[doc] / total)});
      second.push_back(0.f);
    } else if (score > out[slot].score) {
      second[slot] = out[slot].score;
      out[slot].score = score;
      out[slot].coverage = std::min(1.f, scratch.matched[doc] / total);
    } else if (score > second[slot]) {
      second[slot] = score;
    }
    scratch.score[doc] = 0.f;
    scratch.matched[doc] = 0.f;
  }
  scratch.touched.clear();
  for (size_t i = 0; i < out.size(); ++i) {
    Candidate& c = out[i];
    scratch.best_of_intent[c.intent] = -1;
    c.score = (c.score + kSecondDocument * second[i]) * boost(c.intent);
  }
  const size_t keep = std::min(out.size(), static_cast<size_t>(std::max(limit, 0)));
  std::partial_sort(out.begin(), out.begin() + keep, out.end(),
                    [](const Candidate& a, const Candidate& b) {
                      return a.score != b.score ? a.score > b.score : a.intent < b.intent;
                    });
  out.resize(keep);
  return out;
}

}  // namespace switchboard::bot
