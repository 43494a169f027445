#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "services/bot/text.h"

namespace switchboard::bot {

// One intent's retrieval result for a query.
struct Candidate {
  int intent = 0;
  // BM25 score of the intent's best document, times the intent's boost.
  float score = 0;
  // Fraction of the query's weight (weight x idf, unknown terms at the
  // largest idf) that the best document matched, in [0, 1].
  float coverage = 0;
};

// A BM25 index over short documents (example phrasings and keyword lists),
// each belonging to an intent; an intent scores as its best document.
// English query words missing from the vocabulary are corrected to a known
// word within edit distance 1 (2 for words of 8+ letters), preferring the
// most frequent. Immutable after Finish; Rank is thread-safe and
// allocation-light (per-thread scratch buffers).
class Index {
 public:
  // Adds a document of `intent` (0-based, dense).
  void Add(int intent, const std::vector<Term>& terms);
  // Computes the statistics. Call once, after every Add.
  void Finish();

  // The best `limit` intents for `query`, highest score first; intents with
  // no matching term are left out. `boost(intent)` multiplies scores (1 for
  // none).
  std::vector<Candidate> Rank(const std::vector<Term>& query, int limit,
                              absl::FunctionRef<float(int)> boost) const;

  int documents() const { return static_cast<int>(doc_intent_.size()); }
  int vocabulary() const { return static_cast<int>(postings_.size()); }

 private:
  struct Posting {
    int doc;
    int tf;
  };
  int Correct(const std::string& term) const;  // -1 if none

  absl::flat_hash_map<std::string, int> term_ids_;
  std::vector<std::string> terms_;
  std::vector<std::vector<Posting>> postings_;
  std::vector<float> idf_;
  std::vector<int> doc_intent_;
  std::vector<int> doc_length_;
  std::vector<float> length_norm_;  // k1 * (1 - b + b * len / avg)
  int intents_ = 0;
  float max_idf_ = 1;
  // Single-character deletions of English terms (and the terms themselves)
  // -> term ids, for typo correction.
  absl::flat_hash_map<std::string, std::vector<int>> deletions_;
};

}  // namespace switchboard::bot
