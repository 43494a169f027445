#include "libs/validation/validation.h"

#include <string>

#include "gtest/gtest.h"

namespace switchboard::validation {
namespace {

TEST(Utf8Test, AcceptsWellFormedAndRejectsMalformed) {
  EXPECT_TRUE(IsValidUtf8("转人工 human 🙂"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xe8\xbd"));          // truncated
  EXPECT_EQ(CountCodePoints("转人工ab"), 5u);
}

TEST(ValidateIdTest, NamesTheFieldInEveryError) {
  EXPECT_TRUE(ValidateId("agent_id", "agent-7@desk.example").ok());
  for (const std::string& bad : {std::string(), std::string(129, 'a'),
                                 std::string("a b"), std::string("a\0b", 3)}) {
    absl::Status s = ValidateId("agent_id", bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message().substr(0, 9), "agent_id:");
  }
}

TEST(ValidateTextTest, LimitsCountCodePointsNotBytes) {
  EXPECT_TRUE(ValidateText("name", "张三", 2).ok());
  EXPECT_FALSE(ValidateText("name", "张三丰", 2).ok());
  EXPECT_FALSE(ValidateText("name", "", 2, /*required=*/true).ok());
  EXPECT_FALSE(ValidateText("name", "a\x01", 10).ok());
  EXPECT_TRUE(ValidateText("name", "a\nb", 10).ok());
}

TEST(ValidateRequestIdTest, AllowsEmptyOrShortKeysOfSafeCharacters) {
  EXPECT_TRUE(ValidateRequestId("request_id", "").ok());
  EXPECT_TRUE(ValidateRequestId("request_id", "retry-1_A").ok());
  EXPECT_TRUE(ValidateRequestId("request_id", std::string(64, 'k')).ok());
  for (const std::string& bad : {std::string(65, 'k'), std::string("a b"), std::string("a/b"),
                                 std::string("é")}) {
    absl::Status s = ValidateRequestId("request_id", bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
    EXPECT_EQ(s.message().rfind("request_id: ", 0), 0u) << s;
  }
}

}  // namespace
}  // namespace switchboard::validation
