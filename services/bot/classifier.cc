#include "services/bot/classifier.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fasttext/fasttext.h"

namespace switchboard::bot {
namespace {

constexpr char kLabelPrefix[] = "__label__";
constexpr float kMinProbability = 0.005f;
// Token updates a training run aims at; sets larger than this over
// `epochs` get fewer epochs.
constexpr double kTargetExampleVisits = 300'000;

// A folder only this process uses, removed with what it holds when the
// guard goes.
class PrivateDir {
 public:
  PrivateDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/bot-classifier-XXXXXX");
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~PrivateDir() {
    if (path_.empty()) return;
    for (const std::string& file : files_) std::remove(file.c_str());
    rmdir(path_.c_str());
  }
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;

  bool ok() const { return !path_.empty(); }
  std::string File(const std::string& name) {
    files_.push_back(absl::StrCat(path_, "/", name));
    return files_.back();
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

// fastText's label index -> ours, from the labels' names; -1 for a name
// that is not one of ours.
std::vector<int> LabelsOf(const fasttext::FastText& model) {
  std::shared_ptr<const fasttext::Dictionary> dictionary = model.getDictionary();
  std::vector<int> label_of_id(dictionary->nlabels(), -1);
  for (int id = 0; id < dictionary->nlabels(); ++id) {
    const std::string name = dictionary->getLabel(id);
    int label = -1;
    if (absl::StartsWith(name, kLabelPrefix) &&
        absl::SimpleAtoi(absl::string_view(name).substr(sizeof(kLabelPrefix) - 1), &label)) {
      label_of_id[id] = label;
    }
  }
  return label_of_id;
}

}  // namespace

TextClassifier::TextClassifier(std::unique_ptr<fasttext::FastText> model,
                               std::vector<int> label_of_id, int labels)
    : model_(std::move(model)), label_of_id_(std::move(label_of_id)), labels_(labels) {}

TextClassifier::~TextClassifier() = default;

absl::StatusOr<std::unique_ptr<const TextClassifier>> TextClassifier::Train(
    const std::vector<Example>& examples, int labels, const Options& options) {
  if (examples.empty()) return absl::InvalidArgumentError("no training examples");
  for (const Example& e : examples) {
    if (e.label < 0 || e.label >= labels) {
      return absl::InvalidArgumentError(absl::StrCat("label ", e.label, " out of range"));
    }
  }
  PrivateDir dir;
  if (!dir.ok()) return absl::UnavailableError("cannot create a temporary folder for training");
  const std::string input = dir.File("train.txt");
  {
    std::ofstream out(input, std::ios::binary);
    for (const Example& e : examples) {
      // An example without tokens still teaches nothing; fastText skips it.
      out << kLabelPrefix << e.label << ' ' << e.tokens << '\n';
    }
    out.close();
    if (!out) return absl::UnavailableError("cannot write the training file");
  }
  fasttext::Args args;
  args.input = input;
  args.model = fasttext::model_name::sup;
  args.loss = labels > options.max_softmax_labels ? fasttext::loss_name::hs
                                                   : fasttext::loss_name::softmax;
  args.dim = options.dim;
  args.lr = options.learning_rate;
  args.epoch = std::max(
      options.min_epochs,
      std::min(options.epochs, static_cast<int>(kTargetExampleVisits / examples.size())));
  args.wordNgrams = options.word_ngrams;
  args.minn = options.min_char_ngram;
  args.maxn = options.max_char_ngram;
  args.bucket = options.buckets;
  args.minCount = 1;
  args.minCountLabel = 1;
  args.thread = 1;
  args.seed = options.seed;
  args.verbose = 0;
  args.saveOutput = false;
  auto model = std::make_unique<fasttext::FastText>();
  try {
    model->train(args);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("fastText training failed: ", e.what()));
  }
  std::vector<int> label_of_id = LabelsOf(*model);
  return std::unique_ptr<const TextClassifier>(
      new TextClassifier(std::move(model), std::move(label_of_id), labels));
}

absl::StatusOr<std::unique_ptr<const TextClassifier>> TextClassifier::Load(
    absl::string_view bytes, int labels) {
  // fastText checks a model's format only when it reads it from a file.
  PrivateDir dir;
  if (!dir.ok()) return absl::UnavailableError("cannot create a temporary folder for the model");
  const std::string path = dir.File("model.bin");
  {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) return absl::UnavailableError("cannot write the model file");
  }
  auto model = std::make_unique<fasttext::FastText>();
  try {
    model->loadModel(path);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not a fastText model: ", e.what()));
  }
  std::vector<int> label_of_id = LabelsOf(*model);
  for (int label : label_of_id) {
    if (label < 0 || label >= labels) {
      return absl::InvalidArgumentError(
          absl::StrCat("model label ", label, " out of range for ", labels, " labels"));
    }
  }
  return std::unique_ptr<const TextClassifier>(
      new TextClassifier(std::move(model), std::move(label_of_id), labels));
}

absl::StatusOr<std::string> TextClassifier::Serialize() const {
  PrivateDir dir;
  if (!dir.ok()) return absl::UnavailableError("cannot create a temporary folder");
  const std::string path = dir.File("model.bin");
  try {
    model_->saveModel(path);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot save the model: ", e.what()));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (!in) return absl::UnavailableError("cannot read the saved model back");
  return bytes.str();
}

std::vector<std::pair<int, float>> TextClassifier::Predict(const std::string& tokens,
                                                           int k) const {
  std::vector<std::pair<int, float>> out;
  if (tokens.empty() || k <= 0) return out;
  // The newline ends the line as in training, where fastText adds its
  // end-of-sentence token to every example: without it short texts, whose
  // average it weighs most, would be read differently.
  std::istringstream in(tokens + '\n');
  std::vector<int32_t> words, labels;
  model_->getDictionary()->getLine(in, words, labels);
  fasttext::Predictions predictions;
  // Labels below kMinProbability cannot change a decision; with the
  // hierarchical softmax of a large base the threshold also prunes the
  // tree search, bounding its cost.
  model_->predict(std::min<int>(k, static_cast<int>(label_of_id_.size())), words, predictions,
                  kMinProbability);
  for (const auto& [log_probability, id] : predictions) {
    if (id < 0 || id >= static_cast<int>(label_of_id_.size()) || label_of_id_[id] < 0) continue;
    out.emplace_back(label_of_id_[id], std::exp(log_probability));
  }
  return out;
}

int TextClassifier::KnownTokens(const std::string& tokens) const {
  int known = 0;
  std::shared_ptr<const fasttext::Dictionary> dictionary = model_->getDictionary();
  for (absl::string_view token : absl::StrSplit(tokens, ' ', absl::SkipEmpty())) {
    if (dictionary->getId(std::string(token)) >= 0) ++known;
  }
  return known;
}

}  // namespace switchboard::bot

