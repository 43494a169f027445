#include "services/bot/text.h"

#include <algorithm>

#include "gtest/gtest.h"

namespace switchboard::bot {
namespace {

bool HasTerm(const Analysis& a, const std::string& term) {
  return std::any_of(a.terms.begin(), a.terms.end(),
                     [&](const Term& t) { return t.text == term; });
}

TEST(TextTest, FoldsCaseFullWidthAndPunctuation) {
  Analysis a = Analyze("ＵＳＤＴ Deposits, NOT credited!!!", nullptr);
  EXPECT_TRUE(HasTerm(a, "e:usdt"));
  EXPECT_TRUE(HasTerm(a, "e:deposit"));
  EXPECT_TRUE(HasTerm(a, "e:credit"));
  EXPECT_EQ(a.latin_words, 4);
  EXPECT_EQ(a.cjk_chars, 0);
}

TEST(TextTest, ApostrophesStayInsideWords) {
  Analysis a = Analyze("it hasn't arrived", nullptr);
  EXPECT_TRUE(HasTerm(a, "e:hasnt"));
  EXPECT_TRUE(HasTerm(a, "e:arriv"));
}

TEST(TextTest, StemsLightlyAndConsistently) {
  EXPECT_EQ(Stem("deposits"), Stem("deposit"));
  EXPECT_EQ(Stem("withdrawing"), Stem("withdraw"));
  EXPECT_EQ(Stem("withdrawal"), Stem("withdraw"));
  EXPECT_EQ(Stem("verified"), Stem("verify"));
  EXPECT_EQ(Stem("addresses"), Stem("address"));
  EXPECT_EQ(Stem("fees"), Stem("fee"));
}

TEST(TextTest, ChineseGetsBigramsUnigramsAndLexiconWords) {
  Lexicon lexicon;
  lexicon.Add("防钓鱼码");
  lexicon.Add("x");  // single characters are not words
  Analysis a = Analyze("怎么设置防钓鱼码？", &lexicon);
  EXPECT_TRUE(HasTerm(a, "b:设置"));
  EXPECT_TRUE(HasTerm(a, "b:钓鱼"));
  EXPECT_TRUE(HasTerm(a, "c:钓"));
  EXPECT_TRUE(HasTerm(a, "w:防钓鱼码"));
  EXPECT_FALSE(HasTerm(a, "c:么"));  // function character
  EXPECT_EQ(a.cjk, "怎么设置防钓鱼码");
  EXPECT_EQ(lexicon.max_length(), 4);
}

TEST(TextTest, MixedTextKeepsBothScripts) {
  Analysis a = Analyze("我的USDT deposit没到账", nullptr);
  EXPECT_TRUE(HasTerm(a, "e:usdt"));
  EXPECT_TRUE(HasTerm(a, "e:deposit"));
  EXPECT_TRUE(HasTerm(a, "b:到账"));
  EXPECT_EQ(DetectLanguage(a), "zh-CN");
  EXPECT_EQ(DetectLanguage(Analyze("my 充值 is not credited", nullptr)), "en");
}

TEST(TextTest, NoClueGivesNoLanguage) {
  EXPECT_EQ(DetectLanguage(Analyze("😀😀🎉", nullptr)), "");
  EXPECT_EQ(DetectLanguage(Analyze("12345 ?!", nullptr)), "");
  EXPECT_TRUE(Analyze("？？？!!!...", nullptr).terms.empty());
  EXPECT_TRUE(Analyze("", nullptr).terms.empty());
}

TEST(TextTest, SpellingsAreReadAsTheirCanonicalForm) {
  Lexicon lexicon;
  EXPECT_TRUE(lexicon.AddSpelling("pw", "password"));
  EXPECT_TRUE(lexicon.AddSpelling("ga", "google authenticator"));
  EXPECT_TRUE(lexicon.AddSpelling("体现", "提现"));
  EXPECT_FALSE(lexicon.AddSpelling("pw", "密码"));     // scripts do not mix
  EXPECT_FALSE(lexicon.AddSpelling("p-w", "password"));  // one word
  Analysis a = Analyze("forgot my PW and GA", &lexicon);
  EXPECT_TRUE(HasTerm(a, "e:password"));
  EXPECT_TRUE(HasTerm(a, "e:googl"));
  EXPECT_TRUE(HasTerm(a, "e:authenticator"));
  EXPECT_FALSE(HasTerm(a, "e:pw"));
  Analysis zh = Analyze("体现一直没到", &lexicon);
  EXPECT_EQ(zh.cjk, "提现一直没到");
  EXPECT_TRUE(HasTerm(zh, "b:提现"));
  // Without a lexicon nothing is respelt.
  EXPECT_TRUE(HasTerm(Analyze("forgot my pw", nullptr), "e:pw"));
}

TEST(TextTest, AmountsAreNumbersAndStatusCodesStay) {
  EXPECT_EQ(Analyze("had 3 eth now 0.2", nullptr).tokens, "had <num> eth now <num> <num>");
  // An amount with its unit: the number, then the unit ("u" is USDT).
  EXPECT_EQ(Analyze("只剩300u了", nullptr).tokens, "只剩 <num> usdt 了");
  EXPECT_EQ(Analyze("20k", nullptr).tokens, "<num> k");
  // HTTP statuses and names with a digit stay.
  EXPECT_EQ(Analyze("api 429 and 2fa", nullptr).tokens, "api 429 2fa");
}

TEST(TextTest, StopWordsOnlyAndRepetitionsAreStillRead) {
  // Stop words are dropped from the classifier's tokens, unless they are
  // all there is.
  EXPECT_EQ(Analyze("got it", nullptr).tokens, "got it");
  EXPECT_EQ(Analyze("i got the code", nullptr).tokens, "code");
  EXPECT_EQ(Analyze("收到收到", nullptr).tokens, "收到");
  EXPECT_EQ(Analyze("人工人工人工", nullptr).cjk, "人工");
  EXPECT_EQ(Analyze("ok ok ok", nullptr).tokens, "ok");
  // Only whole repeated runs: other text is untouched.
  EXPECT_EQ(Analyze("天天都失败", nullptr).cjk, "天天都失败");
}

TEST(TextTest, InvalidBytesAreSeparatorsNotCrashes) {
  Analysis a = Analyze(std::string("dep\xff\xfeosit \xe4\xb8", 12), nullptr);
  EXPECT_TRUE(HasTerm(a, "e:dep"));
}

TEST(TextTest, ReplyLanguageFromTag) {
  EXPECT_EQ(ReplyLanguageFor("zh-CN"), "zh-CN");
  EXPECT_EQ(ReplyLanguageFor("zh-Hans"), "zh-CN");
  EXPECT_EQ(ReplyLanguageFor("ZH"), "zh-CN");
  EXPECT_EQ(ReplyLanguageFor(""), "en");
  EXPECT_EQ(ReplyLanguageFor("en-GB"), "en");
  EXPECT_EQ(ReplyLanguageFor("fr"), "en");
}

TEST(TextTest, EditDistanceCountsTranspositionsAndStopsEarly) {
  EXPECT_EQ(EditDistance("acount", "account", 2), 1);
  EXPECT_EQ(EditDistance("slipage", "slippage", 2), 1);
  EXPECT_EQ(EditDistance("withdrawl", "withdrawal", 2), 1);
  EXPECT_EQ(EditDistance("form", "from", 2), 1);
  EXPECT_EQ(EditDistance("abc", "xyzuvw", 1), 2);
}

}  // namespace
}  // namespace switchboard::bot
