#include "libs/auth/json.h"

#include <string>

#include "gtest/gtest.h"

namespace switchboard::auth {
namespace {

TEST(JsonTest, ValidatesUtf8) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("充值没到账"));
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));  // an emoji, four bytes
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // a surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xE5\x85"));          // cut short
  EXPECT_FALSE(IsValidUtf8("\x80"));              // a lone continuation byte
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(JsonTest, EscapesWhatJsonNeeds) {
  std::string out;
  ASSERT_TRUE(AppendJsonString("a\"b\\c\n\t\x01 充", &out));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\t\\u0001 充\"");
  std::string nul;
  ASSERT_TRUE(AppendJsonString(std::string("a\0b", 3), &nul));
  EXPECT_EQ(nul, "\"a\\u0000b\"");
}

TEST(JsonTest, RefusesInvalidUtf8AndLeavesTheOutputAlone) {
  std::string out = "{";
  EXPECT_FALSE(AppendJsonString("bad \xFF", &out));
  EXPECT_EQ(out, "{");
}

}  // namespace
}  // namespace switchboard::auth
