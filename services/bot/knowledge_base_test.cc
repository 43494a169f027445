#include "services/bot/knowledge_base.h"

#include <fstream>

#include "gtest/gtest.h"
#include "services/bot/default_knowledge_base.h"
#include "services/bot/default_models.h"

namespace switchboard::bot {
namespace {

constexpr char kPath[] = "services/bot/kb/intents.kb";

constexpr char kValid[] = R"(human_request: zh-CN | 转人工
human_request: en | real person
lexicon: 到账

intent: deposit
category: deposit
title: zh-CN | 充值未到账
title: en | Deposit missing
example: zh-CN | 充值没到账
example: en | deposit not credited
answer: zh-CN | 第一步
  第二步
answer: en | Step one
  Step two
quick_reply: intent:fee | 手续费 | Fee
follow_up: fee

intent: fee
category: trading
title: zh-CN | 手续费
title: en | Fees
example: zh-CN | 手续费多少
example: en | trading fee
answer: zh-CN | 0.1%
answer: en | 0.1%
)";

std::string Error(const std::string& content) {
  auto kb = ParseKnowledgeBase("kb/test.kb", content);
  EXPECT_FALSE(kb.ok());
  if (kb.ok()) return "";
  EXPECT_EQ(kb.status().code(), absl::StatusCode::kFailedPrecondition);
  return std::string(kb.status().message());
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(KnowledgeBaseTest, ParsesAValidFile) {
  auto kb = ParseKnowledgeBase("kb/test.kb", kValid);
  ASSERT_TRUE(kb.ok()) << kb.status();
  ASSERT_EQ((*kb)->intents.size(), 2u);
  const IntentSpec* deposit = (*kb)->Find("deposit");
  ASSERT_NE(deposit, nullptr);
  EXPECT_EQ(deposit->category, common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(deposit->answers[kZh], "第一步\n第二步");
  EXPECT_EQ(deposit->answers[kEn], "Step one\nStep two");
  ASSERT_EQ(deposit->quick_replies.size(), 1u);
  EXPECT_EQ(deposit->quick_replies[0].labels[kEn], "Fee");
  EXPECT_EQ((*kb)->example_count, 4);
  EXPECT_EQ((*kb)->version.size(), 16u);
  EXPECT_EQ((*ParseKnowledgeBase("other", kValid))->version, (*kb)->version);
  EXPECT_NE((*ParseKnowledgeBase("x", std::string(kValid) + "\n"))->version, (*kb)->version);
  ASSERT_EQ((*kb)->human_requests.size(), 2u);
  EXPECT_EQ((*kb)->human_requests[0].language, kZh);
  EXPECT_EQ((*kb)->human_requests[1].text, "real person");
  // Trained at load: the classifier knows the base's labels and words.
  ASSERT_NE((*kb)->intent_model, nullptr);
  EXPECT_EQ((*kb)->intent_model->labels(), 3);  // two intents and "no intent"
  EXPECT_GT((*kb)->intent_model->KnownTokens("deposit"), 0);
  ASSERT_NE((*kb)->safety_model, nullptr);  // it has human requests
}

TEST(KnowledgeBaseTest, ParsesCuesOutOfScopeTextsAndFlags) {
  const std::string content = Replace(kValid, "lexicon: 到账\n",
                                      "lexicon: 到账\n"
                                      "out_of_scope: en | will bitcoin go up\n"
                                      "cue: human | 人工 + !审核\n"
                                      "cue: deposit | 被盗\n") +
                              "handoff: true\nsmall_talk: false\n";
  // A cue may only point at an escalating intent.
  EXPECT_EQ(Error(content),
            "kb/test.kb:6: cue: intent 'deposit' neither sensitive nor handoff; cues only "
            "signal escalations");
  auto kb = ParseKnowledgeBase("kb/test.kb",
                               Replace(content, "category: deposit", "category: deposit\nsensitive: true"));
  ASSERT_TRUE(kb.ok()) << kb.status();
  ASSERT_EQ((*kb)->cues.size(), 2u);
  EXPECT_EQ((*kb)->cues[0].intent, -1);
  EXPECT_EQ((*kb)->intents[(*kb)->cues[1].intent].id, "deposit");
  EXPECT_TRUE((*kb)->cues[0].cue.Matches(Analyze("转人工", nullptr)));
  EXPECT_EQ((*kb)->out_of_scope.size(), 1u);
  EXPECT_TRUE((*kb)->Find("fee")->handoff);
  EXPECT_FALSE((*kb)->Find("fee")->small_talk);
  EXPECT_EQ((*kb)->escalating.size(), 2u);
}

TEST(KnowledgeBaseTest, SpellingsReachTheCuesAndFillersWrapPhrasings) {
  auto kb = ParseKnowledgeBase(
      "kb/test.kb", Replace(kValid, "lexicon: 到账\n",
                            "lexicon: 到账\n"
                            "spelling: deposit | depo deposite\n"
                            "spelling: 充值 | 冲值\n"
                            "filler: zh-CN | 你好，...\n"
                            "filler: en | ... thanks\n"
                            "cue: human | deposit + agent\n"));
  ASSERT_TRUE(kb.ok()) << kb.status();
  ASSERT_EQ((*kb)->fillers.size(), 2u);
  EXPECT_EQ((*kb)->fillers[1].text, "... thanks");
  // The cue was written with the canonical word; the text has a variant.
  ASSERT_EQ((*kb)->cues.size(), 1u);
  EXPECT_TRUE((*kb)->cues[0].cue.Matches(Analyze("my depo, get an agent", &(*kb)->lexicon)));
  EXPECT_EQ(Analyze("冲值没到账", &(*kb)->lexicon).cjk, "充值没到账");
  // A wrapped phrasing means what the phrasing means.
  const auto top = (*kb)->intent_model->Predict(
      Analyze("你好，手续费多少", &(*kb)->lexicon).tokens, 1);
  ASSERT_FALSE(top.empty());
  EXPECT_EQ((*kb)->intents[top[0].first].id, "fee");
}

TEST(KnowledgeBaseTest, TheRealBaseCoversTheDesksTopics) {
  auto kb = LoadKnowledgeBase(kPath, ModelOptions(), DefaultModels());
  ASSERT_TRUE(kb.ok()) << kb.status();
  EXPECT_GE((*kb)->intents.size(), 40u);
  int sensitive = 0;
  absl::flat_hash_map<common::v1::Category, int> per_category;
  for (const IntentSpec& intent : (*kb)->intents) {
    sensitive += intent.sensitive;
    ++per_category[intent.category];
    for (Language l : {kZh, kEn}) {
      EXPECT_FALSE(intent.answers[l].empty()) << intent.id;
      EXPECT_FALSE(intent.titles[l].empty()) << intent.id;
    }
  }
  EXPECT_GE(sensitive, 3);
  for (int c = common::v1::CATEGORY_ACCOUNT_SECURITY; c <= common::v1::CATEGORY_GENERAL; ++c) {
    EXPECT_GE(per_category[static_cast<common::v1::Category>(c)], 2) << c;
  }
  // Enough phrasings to learn from, the way customers write, in both
  // languages.
  for (const IntentSpec& intent : (*kb)->intents) {
    int per_language[kLanguages] = {};
    for (const auto& example : intent.examples) ++per_language[example.first];
    EXPECT_GE(per_language[kZh], 20) << intent.id;
    EXPECT_GE(per_language[kEn], 20) << intent.id;
  }
  int human[kLanguages] = {};
  for (const Phrasing& p : (*kb)->human_requests) ++human[p.language];
  EXPECT_GE(human[kZh], 60);
  EXPECT_GE(human[kEn], 60);
  // The intents that must never be missed have the most phrasings.
  for (const IntentSpec& intent : (*kb)->intents) {
    if (!intent.sensitive) continue;
    int per_language[kLanguages] = {};
    for (const auto& example : intent.examples) ++per_language[example.first];
    EXPECT_GE(per_language[kZh], 40) << intent.id;
    EXPECT_GE(per_language[kEn], 40) << intent.id;
  }
  EXPECT_GE((*kb)->out_of_scope.size(), 60u);
  EXPECT_FALSE((*kb)->cues.empty());
}

TEST(KnowledgeBaseTest, TheBuiltInBaseIsTheFile) {
  std::ifstream in(kPath, std::ios::binary);
  std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(file.empty());
  EXPECT_EQ(DefaultKnowledgeBase(), file);
}

TEST(KnowledgeBaseTest, TheBuiltInModelsAreTheOnesTrainingGives) {
  auto parsed = ParseKnowledgeBase(kDefaultKnowledgeBaseName, DefaultKnowledgeBase(),
                                   ModelOptions(), DefaultModels());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)->model_key, ModelKey(DefaultKnowledgeBase(), ModelOptions()));
  KnowledgeBase loaded = **parsed;
  ASSERT_TRUE(BuildModelsFrom(loaded, DefaultModels()).ok());
  EXPECT_TRUE(loaded.prebuilt_models);
  KnowledgeBase trained = **parsed;
  ASSERT_TRUE(BuildModels(trained, ModelOptions()).ok());
  EXPECT_FALSE(trained.prebuilt_models);
  // Training is deterministic: the models the build trained are the ones
  // the bot would train at start-up, to the last bit.
  for (const char* text : {"充值没到账", "my account was hacked", "转人工", "hello",
                           "what is the weather", "提现一直在审核中 help"}) {
    const std::string tokens = Analyze(text, &loaded.lexicon).tokens;
    const auto a = loaded.intent_model->Predict(tokens, 5);
    const auto b = trained.intent_model->Predict(tokens, 5);
    ASSERT_EQ(a.size(), b.size()) << text;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].first, b[i].first) << text;
      EXPECT_EQ(a[i].second, b[i].second) << text;
    }
    const auto sa = loaded.safety_model->Predict(tokens, 3);
    const auto sb = trained.safety_model->Predict(tokens, 3);
    ASSERT_EQ(sa.size(), sb.size()) << text;
    for (size_t i = 0; i < sa.size(); ++i) EXPECT_EQ(sa[i], sb[i]) << text;
  }
}

TEST(KnowledgeBaseTest, ModelsOfAnotherBaseAreNotUsed) {
  // Content of its own, so that no earlier build of it is reused.
  auto kb = ParseKnowledgeBase("kb/test.kb", std::string(kValid) + "# models of another base\n",
                               ModelOptions(), DefaultModels());
  ASSERT_TRUE(kb.ok()) << kb.status();
  EXPECT_FALSE((*kb)->prebuilt_models);
  ASSERT_NE((*kb)->Find("fee"), nullptr);
  const auto top = (*kb)->intent_model->Predict(Analyze("交易手续费", nullptr).tokens, 1);
  ASSERT_FALSE(top.empty());
  EXPECT_EQ((*kb)->intents[top[0].first].id, "fee");

  // Its own models round-trip through a blob.
  auto blob = SerializeModels(**kb);
  ASSERT_TRUE(blob.ok()) << blob.status();
  KnowledgeBase loaded = **kb;
  ASSERT_TRUE(BuildModelsFrom(loaded, *blob).ok());
  EXPECT_EQ(loaded.intent_model->Predict(Analyze("交易手续费", nullptr).tokens, 1), top);
  EXPECT_EQ(BuildModelsFrom(loaded, "not a blob").code(), absl::StatusCode::kInvalidArgument);
}

TEST(KnowledgeBaseTest, BrokenFilesNameTheLineAndTheProblem) {
  // Line numbers count from 1, comments and blank lines included.
  EXPECT_EQ(Error(Replace(kValid, "answer: en | Step one\n  Step two\n", "")),
            "kb/test.kb:5: intent 'deposit' has no en answer");
  EXPECT_EQ(Error(Replace(kValid, "category: trading", "category: lunch")),
            "kb/test.kb:19: unknown category \"lunch\" (use account_security, deposit, "
            "withdrawal, trading, kyc, technical, frozen_funds or general)");
  EXPECT_EQ(Error(Replace(kValid, "follow_up: fee", "follow_up: nope")),
            "kb/test.kb:16: refers to unknown intent 'nope'");
  EXPECT_EQ(Error(Replace(kValid, "intent: fee", "intent: deposit")),
            "kb/test.kb:18: intent 'deposit' is defined twice (first at line 5)");
  EXPECT_EQ(Error(Replace(kValid, "title: en | Fees", "title: fr | Frais")),
            "kb/test.kb:21: title: unknown language \"fr\" (use zh-CN or en)");
  EXPECT_EQ(Error(Replace(kValid, "example: en | trading fee", "example trading fee")),
            "kb/test.kb:23: expected \"key: value\", got \"example trading fee\"");
  EXPECT_EQ(Error(Replace(kValid, "example: en | trading fee", "colour: blue")),
            "kb/test.kb:23: unknown key \"colour\"");
  EXPECT_EQ(Error(Replace(kValid, "example: en | trading fee\n", "")),
            "kb/test.kb:18: intent 'fee' has no en example");
  EXPECT_EQ(Error(Replace(kValid, "intent: fee", "intent: Fee-2")),
            "kb/test.kb:18: intent id \"Fee-2\" must be 1 to 64 of a-z, 0-9 and _");
  EXPECT_EQ(Error(Replace(kValid, "quick_reply: intent:fee | 手续费 | Fee",
                          "quick_reply: intent:fee | 手续费")),
            "kb/test.kb:15: quick_reply: expected \"<id> | <zh-CN label> | <en label>\"");
  EXPECT_EQ(Error(Replace(kValid, "quick_reply: intent:fee", "quick_reply: url:x")),
            "kb/test.kb:15: quick_reply: unknown id \"url:x\" (use intent:<id> or handoff:human)");
  EXPECT_EQ(Error(std::string(kValid) + "sensitive: maybe\n"),
            "kb/test.kb:26: sensitive: expected true or false");
  EXPECT_EQ(Error(Replace(kValid, "lexicon: 到账\n", "  stray\n")),
            "kb/test.kb:3: an indented line continues an answer, but no answer precedes it");
  EXPECT_EQ(Error(std::string(kValid) + "lexicon: 提现\n"),
            "kb/test.kb:26: lexicon: settings must come before the first intent");
  EXPECT_EQ(Error(Replace(kValid, "title: en | Fees", "title: en | " + std::string(41, 'x'))),
            "kb/test.kb:21: title: 41 characters, at most 40");
  EXPECT_EQ(Error(Replace(kValid, "example: zh-CN | 手续费多少", "example: zh-CN | \xff\xfe")),
            "kb/test.kb:22: not valid UTF-8");
  EXPECT_EQ(Error(Replace(kValid, "answer: en | 0.1%", "answer: en |")),
            "kb/test.kb:25: answer: empty text");
  EXPECT_EQ(Error("# nothing here\n"), "kb/test.kb:1: no intents");
  EXPECT_EQ(Error(Replace(kValid, "lexicon: 到账", "cue: human | 人工 +")),
            "kb/test.kb:3: cue has an empty slot");
  EXPECT_EQ(Error(Replace(kValid, "lexicon: 到账", "cue: nobody | 人工")),
            "kb/test.kb:3: cue: unknown intent 'nobody'");
  EXPECT_EQ(Error(Replace(kValid, "lexicon: 到账", "cue: 人工")),
            "kb/test.kb:3: cue: expected \"<human or intent id> | <pattern>\"");
  EXPECT_EQ(Error(Replace(kValid, "lexicon: 到账", "filler: en | hi there")),
            "kb/test.kb:3: filler: mark where the phrasing goes with one \"...\"");
  EXPECT_EQ(Error(Replace(kValid, "lexicon: 到账", "filler: en | ... and ...")),
            "kb/test.kb:3: filler: mark where the phrasing goes with one \"...\"");
  EXPECT_EQ(Error(Replace(kValid, "lexicon: 到账", "spelling: password")),
            "kb/test.kb:3: spelling: expected \"<canonical> | <variant> <variant> ...\"");
  EXPECT_EQ(Error(Replace(kValid, "lexicon: 到账", "spelling: 密码 | pw")),
            "kb/test.kb:3: spelling: \"pw\" -> \"密码\": a Latin word for Latin words, or "
            "Chinese for Chinese");
  EXPECT_EQ(Error(std::string(kValid) + "out_of_scope: en | hello\n"),
            "kb/test.kb:26: out_of_scope: settings must come before the first intent");
  EXPECT_EQ(Error("category: deposit\n"),
            "kb/test.kb:1: \"category\" outside an intent (start one with \"intent: <id>\")");
}

TEST(KnowledgeBaseTest, UnreadableFileIsUnavailable) {
  auto kb = LoadKnowledgeBase("services/bot/kb/no-such-file.kb");
  EXPECT_EQ(kb.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(kb.status().message().find("no-such-file.kb"), absl::string_view::npos);
}

TEST(KnowledgeBaseTest, IndexRanksTheRightIntentFirst) {
  auto kb = ParseKnowledgeBase("kb/test.kb", kValid);
  ASSERT_TRUE(kb.ok());
  auto rank = [&](const std::string& text) {
    std::vector<Candidate> c =
        (*kb)->index.Rank(Analyze(text, &(*kb)->lexicon).terms, 3, [](int) { return 1.f; });
    return c.empty() ? std::string() : (*kb)->intents[c[0].intent].id;
  };
  EXPECT_EQ(rank("充值了但是没到账"), "deposit");
  EXPECT_EQ(rank("my deposits are not credited"), "deposit");
  EXPECT_EQ(rank("depositt not creditted"), "deposit");  // typos
  EXPECT_EQ(rank("交易手续费"), "fee");
  EXPECT_EQ(rank("weather"), "");
}

}  // namespace
}  // namespace switchboard::bot
