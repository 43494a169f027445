#include "services/bot/bot.h"

#include <algorithm>
#include <fstream>

#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "libs/protoutil/time.h"
#include "libs/storage/test_dir.h"
#include "services/bot/default_models.h"
#include "prometheus/registry.h"

namespace switchboard::bot {
namespace {

constexpr char kPath[] = "services/bot/kb/intents.kb";

// Fails every append, as a full disk would.
class FailingEventLog : public EventLog {
 public:
  void Append(events::v1::Event, std::function<void(absl::Status)> done) override {
    done(absl::UnavailableError("disk full"));
  }
};

class BotTest : public ::testing::Test {
 protected:
  explicit BotTest(EventLog* log = nullptr)
      : metrics_(registry_), bot_(kPath, log ? log : &events_, &clock_, &metrics_, BotOptions()) {
    // With a failing log the reload cannot be recorded and is refused.
    EXPECT_EQ(bot_.Reload("startup").ok(), log == nullptr);
  }

  absl::StatusOr<v1::AnswerResponse> Ask(const std::string& session, const std::string& text,
                                         v1::AnswerRequest request = {}) {
    request.set_session_id(session);
    if (request.turn_id().empty()) request.set_turn_id("t-" + std::to_string(++turn_));
    request.set_text(text);
    v1::AnswerResponse response;
    absl::Status status = absl::InternalError("done not called");
    bot_.Answer(request, &response, [&](absl::Status s) { status = s; });
    if (!status.ok()) return status;
    return response;
  }

  std::vector<events::v1::Event> TurnEvents() {
    std::vector<events::v1::Event> out;
    for (auto& e : events_.events()) {
      if (e.has_turn_completed()) out.push_back(e);
    }
    return out;
  }

  FakeClock clock_;
  prometheus::Registry registry_;
  BotMetrics metrics_;
  MemoryEventLog events_;
  Bot bot_;
  int turn_ = 0;
};

TEST_F(BotTest, AnswersChineseEnglishMixedAndTypos) {
  auto zh = Ask("s-1", "我充的USDT还没到账");
  ASSERT_TRUE(zh.ok()) << zh.status();
  EXPECT_EQ(zh->outcome(), v1::ANSWER_OUTCOME_ANSWERED);
  EXPECT_EQ(zh->answered_intent_id(), "deposit_not_credited");
  EXPECT_EQ(zh->reply_language(), "zh-CN");
  EXPECT_EQ(zh->detected_language(), "zh-CN");
  EXPECT_EQ(zh->category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_NE(zh->reply_text().find("TxID"), std::string::npos);
  EXPECT_FALSE(zh->quick_replies().empty());
  EXPECT_LE(zh->quick_replies_size(), 6);
  EXPECT_GT(zh->intent_guesses(0).confidence(), 0.5f);
  EXPECT_LE(zh->intent_guesses(0).confidence(), 1.f);
  EXPECT_EQ(zh->knowledge_base_version(), bot_.knowledge_base()->version);

  auto en = Ask("s-2", "How do I reset my pasword?");
  ASSERT_TRUE(en.ok());
  EXPECT_EQ(en->answered_intent_id(), "password_reset");
  EXPECT_EQ(en->reply_language(), "en");

  auto mixed = Ask("s-3", "我的withdrawal一直pending");
  ASSERT_TRUE(mixed.ok());
  EXPECT_EQ(mixed->intent_guesses(0).intent_id(), "withdrawal_pending");

  auto typo = Ask("s-4", "what is slipage");
  ASSERT_TRUE(typo.ok());
  EXPECT_EQ(typo->answered_intent_id(), "slippage");
}

TEST_F(BotTest, FollowUpsUseThePreviousIntentAndCategory) {
  ASSERT_EQ(Ask("s-1", "充值没到账")->answered_intent_id(), "deposit_not_credited");
  auto still = Ask("s-1", "还是没到账");
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->answered_intent_id(), "deposit_still_missing");
  EXPECT_EQ(still->category(), common::v1::CATEGORY_DEPOSIT);

  ASSERT_EQ(Ask("s-2", "my withdrawal is pending")->answered_intent_id(), "withdrawal_pending");
  auto fee = Ask("s-2", "what about the fee?");
  ASSERT_TRUE(fee.ok());
  EXPECT_EQ(fee->answered_intent_id(), "withdrawal_fee");
  // Without context the same question is about another fee.
  auto fresh = Ask("s-3", "what about the fee?");
  ASSERT_TRUE(fresh.ok());
  EXPECT_NE(fresh->answered_intent_id(), "withdrawal_fee");

  std::vector<events::v1::Event> turns = TurnEvents();
  ASSERT_GE(turns.size(), 4u);
  EXPECT_TRUE(turns[1].turn_completed().follow_up());
  EXPECT_TRUE(turns[3].turn_completed().follow_up());
  EXPECT_FALSE(turns[0].turn_completed().follow_up());
}

TEST_F(BotTest, ExplicitHumanRequestsAlwaysEscalate) {
  for (const char* text : {"转人工", "人工客服", "我要真人", "帮我找客服", "human please",
                           "I want an agent", "let me talk to a real person",
                           "can I talk to someone", "充值没到账，转人工"}) {
    auto r = Ask("s-human-" + std::to_string(turn_), text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status();
    EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ESCALATED) << text;
    EXPECT_EQ(r->handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED) << text;
    EXPECT_FALSE(r->reply_text().empty());
  }
  auto with_topic = Ask("s-topic", "my deposit is not credited, real person please");
  ASSERT_TRUE(with_topic.ok());
  EXPECT_EQ(with_topic->handoff().category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(with_topic->handoff().intent_guesses(0).intent_id(), "deposit_not_credited");
  EXPECT_EQ(with_topic->handoff().language(), "en");

  v1::AnswerRequest button;
  button.set_quick_reply_id("handoff:human");
  auto tapped = Ask("s-button", "", button);
  ASSERT_TRUE(tapped.ok()) << tapped.status();
  EXPECT_EQ(tapped->outcome(), v1::ANSWER_OUTCOME_ESCALATED);
}

// The failure classes of issue 11, each with phrasings written for this
// test (not the reporter's, nor the knowledge base's or dev set's).
TEST_F(BotTest, HumanRequestsWithoutAListedPhraseEscalate) {
  for (const char* text : {"麻烦让个真人来看看我的问题", "别再自动回复了，叫个客服人员来",
                           "人工呢？帮我接一下", "could a real human please jump in here",
                           "i'd rather speak with a support rep than a bot",
                           "put me through to your staff, this chatbot is not helping"}) {
    auto r = Ask("s-human-" + std::to_string(turn_), text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status();
    EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ESCALATED) << text;
    EXPECT_EQ(r->handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED) << text;
    // Never answered with an unrelated article.
    EXPECT_TRUE(r->answered_intent_id().empty()) << text;
  }
}

TEST_F(BotTest, ABareWordForSupportOrPinyinAsksForAHuman) {
  for (const char* text : {"客服？？", "客服客服", "KEFU", "ren gong kefu please"}) {
    auto r = Ask("s-bare-" + std::to_string(turn_), text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status();
    EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ESCALATED) << text;
    EXPECT_EQ(r->handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED) << text;
  }
  // The same word inside a question about reaching support is answered.
  auto r = Ask("s-bare-question", "客服邮箱是多少");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ANSWERED);
  EXPECT_EQ(r->answered_intent_id(), "contact_support");
}

TEST_F(BotTest, ATakeoverToldThroughItsAftermathEscalates) {
  // Told through what the intruder did or how the customer was tricked,
  // never with "stolen" or "hacked".
  for (const char* text : {"my account got hijacked overnight", "骗子把我的手机号改绑了",
                           "somebody replaced the email on my account with theirs",
                           "i shared my otp with a fake support guy and now my wallet is empty"}) {
    auto r = Ask("s-aftermath-" + std::to_string(turn_), text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status();
    EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ESCALATED) << text;
    EXPECT_EQ(r->handoff().reason(), common::v1::ESCALATION_REASON_SENSITIVE_TOPIC) << text;
    EXPECT_TRUE(r->verification_required()) << text;
  }
  // Changing one's own contact stays a how-to.
  auto r = Ask("s-own-change", "how do I change my phone number");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ANSWERED);
  EXPECT_EQ(r->answered_intent_id(), "change_contact");
}

TEST_F(BotTest, SensitiveReportsInLongSentencesEscalateOnTheFirstTurn) {
  for (const char* text :
       {"今天早上醒来发现我的号被别人登录了，绑定的手机也被换掉了，怎么办",
        "有人趁我睡觉把账户里的币全提走了，我什么都没点过",
        "hey, my email says a new browser signed into my account from abroad and that wasn't me",
        "just noticed my usdt balance dropped to almost zero and i made no trades at all",
        "为什么我的资金全部被冻住了，一分钱都动不了"}) {
    auto r = Ask("s-sensitive-" + std::to_string(turn_), text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status();
    EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ESCALATED) << text;
    EXPECT_EQ(r->handoff().reason(), common::v1::ESCALATION_REASON_SENSITIVE_TOPIC) << text;
    EXPECT_TRUE(r->verification_required()) << text;
    EXPECT_TRUE(r->handoff().verification_required()) << text;
  }
}

TEST_F(BotTest, AGreetingBeforeAQuestionDoesNotHideIt) {
  auto r = Ask("s-1", "嗨嗨，请教一下，前天转进来的ETH一直没有显示在余额里");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ANSWERED);
  EXPECT_EQ(r->answered_intent_id(), "deposit_not_credited");
  auto en = Ask("s-2", "hello there! quick one: my withdrawal has been processing since noon");
  ASSERT_TRUE(en.ok());
  EXPECT_EQ(en->answered_intent_id(), "withdrawal_pending");
}

TEST_F(BotTest, TopicsWithoutTheBasesWordsAreUnderstood) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"the candles on the btc chart are all blank today", "market_data_display"},
      {"行情一直不跳动，好像卡住了", "market_data_display"},
      {"i never get any alerts on my phone from your app", "push_notifications"},
      {"打开网站提示502错误", "page_not_loading"},
      {"my script receives 429 responses all the time", "api_rate_limit"},
      {"它说我的订单数量太小下不了单", "minimum_order_size"},
      {"my stop loss did not fire when the price crashed", "stop_order_not_triggered"},
      {"挂单莫名被系统撤销了", "order_cancelled_automatically"},
  };
  int clarified = 0;
  for (const auto& [text, intent] : cases) {
    auto r = Ask("s-topic-" + std::to_string(turn_), text);
    ASSERT_TRUE(r.ok()) << text;
    // Answered, or at worst offered among two or three choices: never "not
    // understood", never another article.
    if (r->outcome() == v1::ANSWER_OUTCOME_CLARIFIED) {
      ++clarified;
      EXPECT_TRUE(std::any_of(r->quick_replies().begin(), r->quick_replies().end(),
                              [&id = intent](const auto& q) { return q.id() == "intent:" + id; }))
          << text;
      continue;
    }
    EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ANSWERED) << text;
    EXPECT_EQ(r->answered_intent_id(), intent) << text;
    // The category follows the answered intent.
    EXPECT_EQ(r->category(), bot_.knowledge_base()->Find(intent)->category) << text;
  }
  EXPECT_LE(clarified, 2);
}

TEST_F(BotTest, OffTopicGibberishAndSymbolsAreNotUnderstood) {
  for (const char* text : {"do you think ethereum will double by christmas", "下周狗狗币能涨多少",
                           "what's a good recipe for dumplings", "qpwoeiru zmxncb", "🙏🙏🙏",
                           "？！。。", "..."}) {
    auto r = Ask("s-off-" + std::to_string(turn_), text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status();
    EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_NOT_UNDERSTOOD) << text;
    EXPECT_TRUE(r->answered_intent_id().empty()) << text;
  }
}

TEST_F(BotTest, SmallTalkGetsItsOwnAnswerAndKeepsTheTopic) {
  ASSERT_EQ(Ask("s-1", "提现一直在处理中")->answered_intent_id(), "withdrawal_pending");
  for (const auto& [text, intent] : std::vector<std::pair<std::string, std::string>>{
           {"好嘞，多谢啦", "thanks"}, {"okay understood", "acknowledgement"}}) {
    auto r = Ask("s-1", text);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->answered_intent_id(), intent) << text;
    // Sessions moves the session to the category an answer reports.
    EXPECT_EQ(r->category(), common::v1::CATEGORY_WITHDRAWAL) << text;
  }
  EXPECT_EQ(Ask("s-2", "hey, good morning")->answered_intent_id(), "greeting");
  // The conversation is still about the withdrawal: a hand-off says so.
  auto human = Ask("s-1", "还是给我转人工吧");
  ASSERT_TRUE(human.ok());
  EXPECT_EQ(human->handoff().category(), common::v1::CATEGORY_WITHDRAWAL);
  EXPECT_EQ(human->handoff().intent_guesses(0).intent_id(), "withdrawal_pending");
  EXPECT_EQ(human->handoff().summary().rfind("Withdrawal pending [withdrawal]", 0), 0u)
      << human->handoff().summary();
}

TEST_F(BotTest, AConversationKeepsItsCategoryThroughSmallTalkNoiseAndAHumanRequest) {
  v1::AnswerRequest deposit_session;
  deposit_session.set_category(common::v1::CATEGORY_DEPOSIT);
  auto first = Ask("s-1", "my ETH deposit from yesterday is still not in my balance",
                   deposit_session);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->category(), common::v1::CATEGORY_DEPOSIT);
  for (const char* text : {"thank you", "one more line", "hmm"}) {
    auto r = Ask("s-1", text, deposit_session);
    ASSERT_TRUE(r.ok()) << text;
    EXPECT_EQ(r->category(), common::v1::CATEGORY_DEPOSIT)
        << text << ": " << v1::AnswerOutcome_Name(r->outcome());
  }
  auto human = Ask("s-1", "I want to talk to a human agent please", deposit_session);
  ASSERT_TRUE(human.ok());
  ASSERT_EQ(human->outcome(), v1::ANSWER_OUTCOME_ESCALATED);
  EXPECT_EQ(human->category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(human->handoff().category(), common::v1::CATEGORY_DEPOSIT);
  ASSERT_FALSE(human->handoff().intent_guesses().empty());
  const IntentSpec* about =
      bot_.knowledge_base()->Find(human->handoff().intent_guesses(0).intent_id());
  ASSERT_NE(about, nullptr);
  EXPECT_EQ(about->category, common::v1::CATEGORY_DEPOSIT) << about->id;
  EXPECT_NE(human->handoff().summary().find("[deposit]"), std::string::npos)
      << human->handoff().summary();

  // A first message asking only for a human keeps the session's category.
  auto bare = Ask("s-2", "can I talk to a real person", deposit_session);
  ASSERT_TRUE(bare.ok());
  ASSERT_EQ(bare->outcome(), v1::ANSWER_OUTCOME_ESCALATED);
  EXPECT_EQ(bare->handoff().category(), common::v1::CATEGORY_DEPOSIT);
}

TEST_F(BotTest, AcknowledgementsAndRepeatsAreSmallTalk) {
  ASSERT_EQ(Ask("s-1", "提现一直在处理中")->answered_intent_id(), "withdrawal_pending");
  for (const char* text : {"收到收到", "好的好的", "嗯嗯好", "明白", "ok noted", "ok ok",
                           "谢谢谢谢", "thanks thanks"}) {
    auto r = Ask("s-1", text);
    ASSERT_TRUE(r.ok()) << text;
    EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ANSWERED) << text;
    const IntentSpec* intent = bot_.knowledge_base()->Find(r->answered_intent_id());
    ASSERT_NE(intent, nullptr) << text;
    EXPECT_TRUE(intent->small_talk) << text << ": " << intent->id;
  }
  // The conversation is still about the withdrawal.
  EXPECT_EQ(Ask("s-1", "转人工")->handoff().intent_guesses(0).intent_id(), "withdrawal_pending");
}

TEST_F(BotTest, BalancesThatFellWithoutTheCustomerEscalate) {
  for (const char* text : {"昨天账户里还有4000U，今天只剩200U了，我一笔都没交易过",
                           "had 1.5 btc on monday, now the wallet says 0.02 and there are no trades"}) {
    auto r = Ask("s-f-" + std::to_string(turn_), text);
    ASSERT_TRUE(r.ok()) << text;
    EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ESCALATED) << text;
    EXPECT_EQ(r->handoff().reason(), common::v1::ESCALATION_REASON_SENSITIVE_TOPIC) << text;
    EXPECT_EQ(r->handoff().intent_guesses(0).intent_id(), "funds_missing") << text;
    EXPECT_EQ(r->category(), common::v1::CATEGORY_FROZEN_FUNDS) << text;
  }
}

TEST_F(BotTest, AHumanRequestKeepsItsTopicAndAComplaintItsFlow) {
  // The request's words dilute the topic's; the topic still leads.
  auto topic = Ask("s-1", "我的谷歌验证器丢了，找个人工帮我处理一下");
  ASSERT_TRUE(topic.ok());
  EXPECT_EQ(topic->handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
  EXPECT_EQ(topic->handoff().intent_guesses(0).intent_id(), "reset_2fa");
  EXPECT_EQ(topic->category(), common::v1::CATEGORY_ACCOUNT_SECURITY);
  // Dissatisfied and asking for a human: the complaint flow, which hands
  // over too.
  auto complaint = Ask("s-2", "your agent was rude to me, get me a supervisor");
  ASSERT_TRUE(complaint.ok());
  EXPECT_EQ(complaint->outcome(), v1::ANSWER_OUTCOME_ESCALATED);
  EXPECT_EQ(complaint->handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
  EXPECT_EQ(complaint->handoff().intent_guesses(0).intent_id(), "complaint");
  EXPECT_NE(complaint->reply_text().find(bot_.knowledge_base()->Find("complaint")->answers[kEn]),
            std::string::npos);
}

// A base whose missing-funds cue also matches a takeover story.
constexpr char kCueBase[] = R"(cue: missing | coins + gone
intent: missing
category: frozen_funds
title: zh-CN | 资金丢失
title: en | Funds missing
sensitive: true
example: zh-CN | 余额少了
example: en | my balance dropped
example: en | my coins are gone and i did nothing
example: en | coins missing from my wallet
answer: zh-CN | 转人工。
answer: en | An agent will check.
intent: takeover
category: account_security
title: zh-CN | 被盗
title: en | Account compromised
sensitive: true
example: zh-CN | 账号被盗了
example: en | a stranger logged into my account
example: en | hacker took over my account
example: en | stranger logged in and took over
answer: zh-CN | 转人工。
answer: en | An agent will help.
intent: hello
category: general
title: zh-CN | 你好
title: en | Hello
small_talk: true
example: zh-CN | 你好
example: en | hello there
answer: zh-CN | 你好！
answer: en | Hello!
)";

TEST_F(BotTest, TheSensitiveTopicIsTheOneWithMostEvidence) {
  auto kb = ParseKnowledgeBase("cue.kb", kCueBase);
  ASSERT_TRUE(kb.ok()) << kb.status();
  bot_.UseKnowledgeBase(*kb);
  // The cue says "missing"; both models read a takeover, and together they
  // outweigh it.
  auto story = Ask("s-1", "a stranger logged into my account, took over and now my coins are gone");
  ASSERT_TRUE(story.ok());
  EXPECT_EQ(story->handoff().reason(), common::v1::ESCALATION_REASON_SENSITIVE_TOPIC);
  EXPECT_EQ(story->handoff().intent_guesses(0).intent_id(), "takeover");
  EXPECT_EQ(story->category(), common::v1::CATEGORY_ACCOUNT_SECURITY);
  // Where the models are unsure, the cue names the topic.
  auto cue = Ask("s-2", "coins gone");
  ASSERT_TRUE(cue.ok());
  EXPECT_EQ(cue->handoff().reason(), common::v1::ESCALATION_REASON_SENSITIVE_TOPIC);
  EXPECT_EQ(cue->handoff().intent_guesses(0).intent_id(), "missing");
}

TEST_F(BotTest, ComplaintsFollowTheComplaintFlowAndHandOff) {
  for (const char* text : {"你们这效率太离谱了，我要投诉处理我问题的人",
                           "this is the most useless support i have ever had, i'm done"}) {
    auto r = Ask("s-c-" + std::to_string(turn_), text);
    ASSERT_TRUE(r.ok()) << text;
    EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ESCALATED) << text;
    EXPECT_EQ(r->handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED) << text;
    EXPECT_EQ(r->handoff().intent_guesses(0).intent_id(), "complaint") << text;
    // The reply is the complaint article (how to file one) before the hand-off.
    EXPECT_NE(r->reply_text().find(bot_.knowledge_base()->Find("complaint")->answers[LanguageOf(
                  r->reply_language())]),
              std::string::npos);
  }
}

TEST_F(BotTest, ThreatsAndAccusationsHandOffAsComplaints) {
  for (const char* text : {"if this isn't fixed today i'm calling my lawyer",
                           "再不给我解决我就去消协维权", "you are a scam platform"}) {
    auto r = Ask("s-threat-" + std::to_string(turn_), text);
    ASSERT_TRUE(r.ok()) << text;
    EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ESCALATED) << text;
    EXPECT_EQ(r->handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED) << text;
  }
}

TEST_F(BotTest, HandoffGuessesAgreeWithTheSummary) {
  for (const char* text : {"账号被盗了", "i want an agent", "my deposit is missing, human please"}) {
    auto r = Ask("s-g-" + std::to_string(turn_), text);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->outcome(), v1::ANSWER_OUTCOME_ESCALATED) << text;
    const common::v1::HandoffContext& h = r->handoff();
    if (h.intent_guesses().empty()) {
      EXPECT_EQ(h.summary().rfind("Unclear request", 0), 0u) << text;
    } else {
      const IntentSpec* first = bot_.knowledge_base()->Find(h.intent_guesses(0).intent_id());
      ASSERT_NE(first, nullptr);
      EXPECT_EQ(h.summary().rfind(first->titles[kEn], 0), 0u) << h.summary();
      EXPECT_EQ(r->intent_guesses(0).intent_id(), h.intent_guesses(0).intent_id());
    }
  }
}

TEST_F(BotTest, ConsecutiveNotUnderstoodTurnsEscalate) {
  auto first = Ask("s-1", "tell me a joke");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->outcome(), v1::ANSWER_OUTCOME_NOT_UNDERSTOOD);
  EXPECT_EQ(first->not_understood_turns(), 1);
  EXPECT_EQ(Ask("s-1", "今天天气怎么样")->not_understood_turns(), 2);
  auto third = Ask("s-1", "sing me a song");
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->outcome(), v1::ANSWER_OUTCOME_ESCALATED);
  EXPECT_EQ(third->handoff().reason(), common::v1::ESCALATION_REASON_NOT_UNDERSTOOD);
  EXPECT_EQ(third->handoff().not_understood_turns(), 3);
  EXPECT_EQ(third->not_understood_turns(), 3);
  // An understood turn resets the count.
  EXPECT_EQ(Ask("s-2", "tell me a joke")->not_understood_turns(), 1);
  EXPECT_EQ(Ask("s-2", "充值没到账")->not_understood_turns(), 0);
  EXPECT_EQ(Ask("s-2", "tell me a joke")->not_understood_turns(), 1);
}

TEST_F(BotTest, SensitiveTopicsEscalateAndAskForVerification) {
  auto stolen = Ask("s-1", "my account was hacked and someone withdrew my USDT on TRC20");
  ASSERT_TRUE(stolen.ok());
  EXPECT_EQ(stolen->outcome(), v1::ANSWER_OUTCOME_ESCALATED);
  EXPECT_TRUE(stolen->answered_intent_id().empty());
  EXPECT_TRUE(stolen->verification_required());
  EXPECT_EQ(stolen->category(), common::v1::CATEGORY_ACCOUNT_SECURITY);
  const common::v1::HandoffContext& handoff = stolen->handoff();
  EXPECT_EQ(handoff.reason(), common::v1::ESCALATION_REASON_SENSITIVE_TOPIC);
  EXPECT_EQ(handoff.category(), common::v1::CATEGORY_ACCOUNT_SECURITY);
  EXPECT_TRUE(handoff.verification_required());
  EXPECT_EQ(handoff.intent_guesses(0).intent_id(), "account_stolen");
  EXPECT_NE(handoff.summary().find("network=TRC20"), std::string::npos) << handoff.summary();
  ASSERT_GE(handoff.collected_details_size(), 2);
  EXPECT_NE(stolen->reply_text().find("Disable account"), std::string::npos);

  v1::AnswerRequest verified;
  verified.mutable_verification()->set_method(common::v1::VERIFICATION_METHOD_TOTP);
  verified.mutable_verification()->set_level(common::v1::VERIFICATION_LEVEL_STRONG);
  protoutil::ToTimestamp(clock_.Now() + absl::Minutes(10),
                         verified.mutable_verification()->mutable_expires_at());
  auto frozen = Ask("s-2", "我的资产被冻结了", verified);
  ASSERT_TRUE(frozen.ok());
  EXPECT_EQ(frozen->outcome(), v1::ANSWER_OUTCOME_ESCALATED);
  EXPECT_EQ(frozen->category(), common::v1::CATEGORY_FROZEN_FUNDS);
  EXPECT_FALSE(frozen->verification_required());  // already verified
  EXPECT_TRUE(frozen->handoff().verification_required());
  EXPECT_EQ(frozen->reply_language(), "zh-CN");

  // An expired verification does not count.
  protoutil::ToTimestamp(clock_.Now() - absl::Minutes(1),
                         verified.mutable_verification()->mutable_expires_at());
  EXPECT_TRUE(Ask("s-3", "my funds are frozen", verified)->verification_required());
}

TEST_F(BotTest, CloseIntentsAreOfferedAsChoicesAndATapAnswers) {
  auto r = Ask("s-1", "fee");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->outcome(), v1::ANSWER_OUTCOME_CLARIFIED);
  ASSERT_GE(r->quick_replies_size(), 2);
  ASSERT_LE(r->quick_replies_size(), 3);
  EXPECT_EQ(r->quick_replies(0).id().rfind("intent:", 0), 0u);
  EXPECT_TRUE(r->answered_intent_id().empty());

  v1::AnswerRequest tap;
  tap.set_quick_reply_id(r->quick_replies(1).id());
  auto chosen = Ask("s-1", r->quick_replies(1).label(), tap);
  ASSERT_TRUE(chosen.ok());
  EXPECT_EQ(chosen->outcome(), v1::ANSWER_OUTCOME_ANSWERED);
  EXPECT_EQ("intent:" + chosen->answered_intent_id(), r->quick_replies(1).id());
  EXPECT_FLOAT_EQ(chosen->intent_guesses(0).confidence(), 1.f);
  EXPECT_TRUE(TurnEvents().back().turn_completed().from_quick_reply());
}

TEST_F(BotTest, RetriedTurnGetsTheFirstAnswerWithoutAnotherEvent) {
  v1::AnswerRequest request;
  request.set_turn_id("m-1");
  auto first = Ask("s-1", "tell me a joke", request);
  auto retry = Ask("s-1", "tell me a joke", request);
  ASSERT_TRUE(first.ok() && retry.ok());
  EXPECT_FALSE(first->replayed());
  EXPECT_TRUE(retry->replayed());
  EXPECT_EQ(retry->not_understood_turns(), 1);  // the dialogue did not advance
  EXPECT_EQ(retry->reply_text(), first->reply_text());
  EXPECT_EQ(TurnEvents().size(), 1u);
  EXPECT_EQ(Ask("s-1", "tell me a joke")->not_understood_turns(), 2);
}

TEST_F(BotTest, BadInputIsAClearErrorOrAClarifyingAnswer) {
  auto code = [&](const std::string& text, v1::AnswerRequest r = {}) {
    return Ask("s-bad", text, r).status().code();
  };
  auto message = [&](const std::string& text) {
    return std::string(Ask("s-bad", text).status().message());
  };
  EXPECT_EQ(code(""), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(message("").rfind("text:", 0), 0u);
  EXPECT_EQ(code("   "), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(std::string(4001, 'a')), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Ask("s-long", std::string(1000, 'x') + " 充值没到账").ok());
  std::string chinese_4000;
  for (int i = 0; i < 4000; ++i) chinese_4000 += "充";
  EXPECT_TRUE(Ask("s-4000", chinese_4000).ok());  // the limit counts characters
  EXPECT_EQ(code(chinese_4000 + "值"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code("bad \xff\xfe utf8"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(message("bad \xff utf8").rfind("text:", 0), 0u);
  EXPECT_EQ(code(std::string("nul\0byte", 8)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code("bell\x07"), absl::StatusCode::kInvalidArgument);
  v1::AnswerRequest unknown_reply;
  unknown_reply.set_quick_reply_id("intent:no_such_intent");
  EXPECT_EQ(code("", unknown_reply), absl::StatusCode::kInvalidArgument);
  v1::AnswerRequest bad_category;
  bad_category.set_category(static_cast<common::v1::Category>(99));
  EXPECT_EQ(code("充值没到账", bad_category), absl::StatusCode::kInvalidArgument);

  for (const char* text : {"😀😀😀", "？？？！！！", "...", "🙏🏻🙏🏻", "12345"}) {
    auto r = Ask("s-noise-" + std::to_string(turn_), text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status();
    EXPECT_EQ(r->outcome(), v1::ANSWER_OUTCOME_NOT_UNDERSTOOD) << text;
    EXPECT_FALSE(r->reply_text().empty());
    EXPECT_TRUE(r->detected_language().empty());
    EXPECT_EQ(r->reply_language(), "en");
  }
  v1::AnswerRequest chinese_session;
  chinese_session.set_language("zh-CN");
  EXPECT_EQ(Ask("s-emoji-zh", "😀", chinese_session)->reply_language(), "zh-CN");
  // Tabs and newlines are text, not control characters.
  EXPECT_EQ(Ask("s-tab", "deposit\tnot\ncredited")->answered_intent_id(),
            "deposit_not_credited");
}

TEST_F(BotTest, MissingIdsAreRejected) {
  v1::AnswerRequest request;
  request.set_text("hello");
  v1::AnswerResponse response;
  absl::Status status;
  bot_.Answer(request, &response, [&](absl::Status s) { status = s; });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.message()).rfind("session_id:", 0), 0u);
  request.set_session_id("s-1");
  bot_.Answer(request, &response, [&](absl::Status s) { status = s; });
  EXPECT_EQ(std::string(status.message()).rfind("turn_id:", 0), 0u);
  request.set_turn_id(std::string(65, 't'));
  bot_.Answer(request, &response, [&](absl::Status s) { status = s; });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BotTest, ResetForgetsTheContext) {
  ASSERT_TRUE(Ask("s-1", "tell me a joke").ok());
  EXPECT_EQ(bot_.ResetDialogue("s-1").value(), true);
  EXPECT_EQ(bot_.ResetDialogue("s-1").value(), false);
  EXPECT_EQ(Ask("s-1", "tell me a joke")->not_understood_turns(), 1);
  // Idle dialogues expire too.
  clock_.Advance(absl::Hours(1));
  EXPECT_EQ(bot_.ExpireDialogues().value(), 1);
  EXPECT_EQ(bot_.ResetDialogue("s-1").value(), false);
}

TEST_F(BotTest, ReloadKeepsTheOldBaseWhenTheFileIsBroken) {
  const std::string dir = storage::MakeTempDir();
  const std::string path = dir + "/intents.kb";
  std::ifstream real(kPath);
  std::string content((std::istreambuf_iterator<char>(real)), std::istreambuf_iterator<char>());
  { std::ofstream(path) << content; }
  Bot bot(path, &events_, &clock_, &metrics_, BotOptions());
  auto first = bot.Reload("startup");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_GE(first->intent_count, 40);
  EXPECT_TRUE(first->previous_version.empty());

  { std::ofstream(path) << content << "\nintent: broken\ncategory: deposit\n"; }
  auto broken = bot.Reload("sup-1");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(broken.status().message().find("intent 'broken' has no zh-CN title"),
            std::string::npos)
      << broken.status();
  EXPECT_NE(broken.status().message().find(path + ":"), std::string::npos);
  EXPECT_EQ(bot.knowledge_base()->version, first->version);

  std::remove(path.c_str());
  EXPECT_EQ(bot.Reload("sup-1").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(bot.knowledge_base()->version, first->version);

  { std::ofstream(path) << content << "\n# edited\n"; }
  auto again = bot.Reload("sup-1");
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->version, first->version);
  EXPECT_EQ(again->previous_version, first->version);

  std::vector<events::v1::KnowledgeBaseReload> reloads;
  for (auto& e : events_.events()) {
    if (e.has_knowledge_base_reload()) {
      EXPECT_EQ(e.entity_id(), "knowledge-base");
      reloads.push_back(e.knowledge_base_reload());
    }
  }
  ASSERT_EQ(reloads.size(), 5u);  // the fixture's, then these four
  EXPECT_FALSE(reloads[2].succeeded());
  EXPECT_EQ(reloads[2].version(), first->version);
  EXPECT_EQ(reloads[2].actor_id(), "sup-1");
  EXPECT_FALSE(reloads[2].error().empty());
  EXPECT_TRUE(reloads[4].succeeded());
}

TEST_F(BotTest, TurnEventsCarryTheDecisionButNotTheText) {
  ASSERT_TRUE(Ask("s-1", "my deposit has not arrived, txid "
                     "0x9f3c5e1a2b4d6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081")
                  .ok());
  auto turns = TurnEvents();
  ASSERT_EQ(turns.size(), 1u);
  const events::v1::Event& e = turns[0];
  EXPECT_EQ(e.type(), "bot.turn_completed");
  EXPECT_EQ(e.entity_id(), "s-1");
  EXPECT_EQ(e.turn_completed().outcome(), v1::ANSWER_OUTCOME_ANSWERED);
  EXPECT_EQ(e.turn_completed().answered_intent_id(), "deposit_not_credited");
  EXPECT_GT(e.turn_completed().text_length(), 20);
  EXPECT_EQ(e.DebugString().find("arrived"), std::string::npos);
}

class FailingLogBotTest : public BotTest {
 protected:
  FailingLogBotTest() : BotTest(&failing_) {}
  static FailingEventLog failing_;
};
FailingEventLog FailingLogBotTest::failing_;

TEST_F(FailingLogBotTest, UnrecordedTurnsAreUnavailableAndAnsweredAgainOnRetry) {
  // The fixture's Reload could not be recorded, so nothing is in service.
  EXPECT_EQ(bot_.knowledge_base(), nullptr);
  auto kb = LoadKnowledgeBase(kPath, ModelOptions(), DefaultModels());
  ASSERT_TRUE(kb.ok());
  bot_.UseKnowledgeBase(*kb);
  v1::AnswerRequest request;
  request.set_turn_id("m-1");
  auto first = Ask("s-1", "充值没到账", request);
  EXPECT_EQ(first.status().code(), absl::StatusCode::kUnavailable);
  auto retry = Ask("s-1", "充值没到账", request);
  EXPECT_EQ(retry.status().code(), absl::StatusCode::kUnavailable);  // not a replay
}

}  // namespace
}  // namespace switchboard::bot
