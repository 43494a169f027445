#include "services/identity/notifier.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "libs/storage/test_dir.h"

namespace switchboard::identity {
namespace {

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(DevelopmentCodeOutboxTest, WritesAMarkedPrivateFileOfJsonLines) {
  const std::string path =
      storage::MakeTempDir() + "/" + DevelopmentCodeOutbox::kFileName;
  v1::CodeDeliveryRequest request;
  request.set_delivery_id("dlv_1");
  request.set_customer_id("cust-1");
  request.set_code("123456");
  {
    auto outbox = DevelopmentCodeOutbox::Open(path);
    ASSERT_TRUE(outbox.ok()) << outbox.status();
    ASSERT_TRUE((*outbox)->Deliver(request).ok());
  }
  {
    // Reopened (a restart): the header is not repeated.
    auto outbox = DevelopmentCodeOutbox::Open(path);
    ASSERT_TRUE(outbox.ok());
    request.set_code("654321");
    ASSERT_TRUE((*outbox)->Deliver(request).ok());
  }
  const std::vector<std::string> lines = Lines(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], DevelopmentCodeOutbox::kHeader);
  EXPECT_NE(lines[0].find("DEVELOPMENT ONLY"), std::string::npos);
  v1::CodeDeliveryRequest parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[2], &parsed).ok());
  EXPECT_EQ(parsed.code(), "654321");
  EXPECT_NE(lines[1].find("\"delivery_id\":\"dlv_1\""), std::string::npos);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

TEST(DevelopmentCodeOutboxTest, OpenNamesTheMissingFolder) {
  auto outbox = DevelopmentCodeOutbox::Open("/nonexistent-folder/outbox.jsonl");
  ASSERT_FALSE(outbox.ok());
  EXPECT_NE(outbox.status().message().find("/nonexistent-folder/outbox.jsonl"),
            std::string::npos);
}

}  // namespace
}  // namespace switchboard::identity
