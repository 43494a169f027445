#include "services/bot/classifier.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace switchboard::bot {
namespace {

std::vector<TextClassifier::Example> Examples() {
  std::vector<TextClassifier::Example> examples;
  const std::vector<std::vector<std::string>> by_label = {
      {"deposit not arrived", "my deposit is missing", "deposit not credited yet",
       "where is my deposit", "sent a deposit it never came"},
      {"withdrawal pending", "my withdrawal is stuck", "withdrawal still processing",
       "withdraw taking long", "pending withdrawal again"},
      {"reset my password", "forgot my password", "change password please",
       "password reset link", "new password needed"},
  };
  for (int label = 0; label < static_cast<int>(by_label.size()); ++label) {
    // Unbalanced on purpose: label 2 is the most frequent, so fastText's
    // own label order differs from ours.
    for (int copy = 0; copy <= label; ++copy) {
      for (const std::string& text : by_label[label]) examples.push_back({label, text});
    }
  }
  return examples;
}

TEST(TextClassifierTest, LearnsLabelsAndGeneralisesToNewWording) {
  auto model = TextClassifier::Train(Examples(), 3, TextClassifier::Options());
  ASSERT_TRUE(model.ok()) << model.status();
  auto top = [&](const std::string& text) {
    auto predicted = (*model)->Predict(text, 3);
    EXPECT_FALSE(predicted.empty()) << text;
    return predicted.empty() ? -1 : predicted[0].first;
  };
  EXPECT_EQ(top("my deposit is missing"), 0);
  EXPECT_EQ(top("deposit never arrived"), 0);
  EXPECT_EQ(top("withdrawl stuck"), 1);  // a typo: character n-grams
  EXPECT_EQ(top("i forgot the password"), 2);
  // Probabilities: the labels left out (below 0.005 each) take the rest.
  auto all = (*model)->Predict("deposit", 3);
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all[0].first, 0);
  float sum = 0;
  for (const auto& [label, p] : all) sum += p;
  EXPECT_LE(sum, 1.f + 1e-3);
  EXPECT_GE(sum, 1.f - 0.005f * (3 - all.size()) - 1e-3);
  EXPECT_TRUE((*model)->Predict("", 3).empty());
  EXPECT_EQ((*model)->KnownTokens("deposit zzzz password"), 2);
}

TEST(TextClassifierTest, TrainingIsDeterministic) {
  auto a = TextClassifier::Train(Examples(), 3, TextClassifier::Options());
  auto b = TextClassifier::Train(Examples(), 3, TextClassifier::Options());
  ASSERT_TRUE(a.ok() && b.ok());
  for (const std::string& text : {"deposit", "stuck withdraw", "blah password help"}) {
    auto pa = (*a)->Predict(text, 3);
    auto pb = (*b)->Predict(text, 3);
    ASSERT_EQ(pa.size(), pb.size());
    for (size_t i = 0; i < pa.size(); ++i) {
      EXPECT_EQ(pa[i].first, pb[i].first);
      EXPECT_EQ(pa[i].second, pb[i].second);
    }
  }
}

TEST(TextClassifierTest, RejectsBadInput) {
  EXPECT_EQ(TextClassifier::Train({}, 1, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TextClassifier::Train({{5, "x"}}, 2, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace switchboard::bot
