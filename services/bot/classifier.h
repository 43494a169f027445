#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fasttext {
class FastText;
}

namespace switchboard::bot {

// A supervised text classifier: fastText (Debian's libfasttext) over the
// tokens it is given, their character n-grams and word bigrams. It is
// trained in memory from labelled token sequences, so a knowledge base's
// own examples make its model and nothing is downloaded.
//
// Training is deterministic: one thread and a fixed seed, so the same
// examples always give the same model. fastText reads training data only
// from a file: Train writes the examples to a private folder it creates
// under $TMPDIR (or /tmp) and removes it before returning.
//
// A trained model can be saved (Serialize) and loaded again (Load), so
// that a base's models can be trained once when the binary is built.
//
// Predict is const and thread-safe; the model is immutable once trained.
class TextClassifier {
 public:
  struct Options {
    int dim = 48;
    // Epochs for small sets; large sets get fewer (at least min_epochs), so
    // that a base of 10,000 intents trains in seconds.
    int epochs = 100;
    int min_epochs = 8;
    double learning_rate = 0.3;
    int word_ngrams = 2;
    // Character n-grams of each token, in code points (with "<" and ">"
    // marking its ends): typos and inflections still share most of them.
    int min_char_ngram = 3;
    int max_char_ngram = 5;
    // Hash buckets for n-grams: the model's size is buckets x dim floats.
    int buckets = 60'000;
    int seed = 7;
    // Above this many labels the output layer is a hierarchical softmax
    // (training and prediction in log(labels)); below, a full softmax,
    // whose probabilities are better calibrated.
    int max_softmax_labels = 1000;
  };

  struct Example {
    int label = 0;
    // Tokens separated by single spaces (see Tokens in text.h).
    std::string tokens;
  };

  // Trains over `examples`, whose labels are in [0, labels). Errors:
  // InvalidArgument (no examples, a label out of range), Unavailable (the
  // temporary folder could not be written), Internal (fastText failed).
  static absl::StatusOr<std::unique_ptr<const TextClassifier>> Train(
      const std::vector<Example>& examples, int labels, const Options& options);

  // A model saved by Serialize, for `labels` labels (fastText reads models
  // from files only: Load writes it to a private temporary folder first).
  // Errors: InvalidArgument (not a fastText model, or labels out of
  // range), Unavailable (the temporary folder could not be written).
  static absl::StatusOr<std::unique_ptr<const TextClassifier>> Load(absl::string_view model,
                                                                    int labels);

  ~TextClassifier();

  // The model in fastText's own format (what its saveModel writes), for
  // Load. Errors: Unavailable (the temporary folder could not be used).
  absl::StatusOr<std::string> Serialize() const;

  // The `k` most probable labels for `tokens` (space separated), most
  // probable first, as (label, probability), leaving out those below 0.005.
  // Empty when the text has no token.
  std::vector<std::pair<int, float>> Predict(const std::string& tokens, int k) const;

  // How many of `tokens` (space separated) the model saw in training.
  int KnownTokens(const std::string& tokens) const;

  int labels() const { return labels_; }

 private:
  TextClassifier(std::unique_ptr<fasttext::FastText> model, std::vector<int> label_of_id,
                 int labels);

  std::unique_ptr<fasttext::FastText> model_;
  // fastText's label index -> our label.
  std::vector<int> label_of_id_;
  int labels_;
};

}  // namespace switchboard::bot
