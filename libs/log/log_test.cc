#include "libs/log/log.h"

#include "gtest/gtest.h"

namespace switchboard::log {
namespace {

TEST(LogTest, FormatsOneJsonObjectWithTypedFields) {
  std::string line = Format(Level::kWarning, "lease_expired",
                            {{"agent_id", "a\"1"}, {"count", 3}, {"ok", true}});
  EXPECT_NE(line.find("\"level\":\"warning\""), std::string::npos);
  EXPECT_NE(line.find("\"event\":\"lease_expired\""), std::string::npos);
  EXPECT_NE(line.find("\"agent_id\":\"a\\\"1\""), std::string::npos);
  EXPECT_NE(line.find("\"count\":3"), std::string::npos);
  EXPECT_NE(line.find("\"ok\":true"), std::string::npos);
  EXPECT_EQ(line.back(), '}');
}

TEST(LogTest, EscapesControlCharactersAndInvalidUtf8) {
  EXPECT_EQ(JsonEscape("a\nb\x01"), "a\\nb\\u0001");
  EXPECT_EQ(JsonEscape("\xff"), "\xEF\xBF\xBD");
  EXPECT_EQ(JsonEscape("转人工"), "转人工");
}

}  // namespace
}  // namespace switchboard::log
