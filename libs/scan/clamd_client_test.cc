#include "libs/scan/clamd_client.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/clamd/clamd.h"

namespace switchboard::scan {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing::ClamdServer;
using testing::Eicar;
using testing::kEicarSignature;

absl::Time Soon() { return absl::Now() + absl::Seconds(10); }

std::unique_ptr<ClamdClient> Client(const std::string& address, size_t chunk_bytes = 64 * 1024) {
  auto client = ClamdClient::Create({address, chunk_bytes});
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

// One clamd for the tests that leave it running.
class ClamdClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { clamd_ = new ClamdServer(); }
  static void TearDownTestSuite() {
    delete clamd_;
    clamd_ = nullptr;
  }

  static ClamdServer* clamd_;
};

ClamdServer* ClamdClientTest::clamd_ = nullptr;

TEST_F(ClamdClientTest, PingIsAnsweredOverUnixSocketAndTcp) {
  EXPECT_TRUE(Client(clamd_->unix_address())->Ping(Soon()).ok());
  EXPECT_TRUE(Client(clamd_->tcp_address())->Ping(Soon()).ok());
  EXPECT_TRUE(Client(clamd_->unix_address())->Ping(absl::InfiniteFuture()).ok());
}

TEST_F(ClamdClientTest, CleanBytesAreClean) {
  for (const std::string& address : {clamd_->unix_address(), clamd_->tcp_address()}) {
    auto verdict = Client(address)->Scan("a screenshot of the order page", Soon());
    ASSERT_TRUE(verdict.ok()) << address << ": " << verdict.status();
    EXPECT_FALSE(verdict->infected) << address;
    EXPECT_EQ(verdict->signature, "");
  }
}

TEST_F(ClamdClientTest, EmptyFileIsClean) {
  auto verdict = Client(clamd_->unix_address())->Scan("", Soon());
  ASSERT_TRUE(verdict.ok()) << verdict.status();
  EXPECT_FALSE(verdict->infected);
}

TEST_F(ClamdClientTest, EicarIsInfectedWithTheSignatureName) {
  for (const std::string& address : {clamd_->unix_address(), clamd_->tcp_address()}) {
    auto verdict = Client(address)->Scan(Eicar(), Soon());
    ASSERT_TRUE(verdict.ok()) << address << ": " << verdict.status();
    EXPECT_TRUE(verdict->infected) << address;
    EXPECT_THAT(verdict->signature, StartsWith(kEicarSignature));
  }
}

TEST_F(ClamdClientTest, EicarSplitAcrossChunksInsideALargerFileIsFound) {
  std::string file(200 * 1024, 'x');
  file.replace(100 * 1024 - 30, Eicar().size(), Eicar());
  auto verdict = Client(clamd_->unix_address(), /*chunk_bytes=*/4096)->Scan(file, Soon());
  ASSERT_TRUE(verdict.ok()) << verdict.status();
  EXPECT_TRUE(verdict->infected);
  EXPECT_THAT(verdict->signature, StartsWith(kEicarSignature));
}

TEST_F(ClamdClientTest, FileLargerThanClamdAcceptsIsResourceExhausted) {
  const std::string file(ClamdServer::kStreamMaxBytes + 64 * 1024, 'x');
  for (const std::string& address : {clamd_->unix_address(), clamd_->tcp_address()}) {
    auto verdict = Client(address)->Scan(file, Soon());
    EXPECT_EQ(verdict.status().code(), absl::StatusCode::kResourceExhausted) << verdict.status();
    EXPECT_THAT(verdict.status().ToString(), HasSubstr("StreamMaxLength"));
  }
}

TEST_F(ClamdClientTest, ScansFromManyThreadsAtOnce) {
  const std::unique_ptr<ClamdClient> client = Client(clamd_->unix_address());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        const bool eicar = (t + i) % 2 == 0;
        auto verdict = client->Scan(eicar ? Eicar() : "hello", Soon());
        ASSERT_TRUE(verdict.ok()) << verdict.status();
        EXPECT_EQ(verdict->infected, eicar);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

TEST(ClamdClientOutageTest, StoppedClamdIsUnavailable) {
  ClamdServer clamd;
  const std::unique_ptr<ClamdClient> unix_client = Client(clamd.unix_address());
  const std::unique_ptr<ClamdClient> tcp_client = Client(clamd.tcp_address());
  clamd.Stop();
  for (ClamdClient* client : {unix_client.get(), tcp_client.get()}) {
    auto verdict = client->Scan(Eicar(), Soon());
    EXPECT_EQ(verdict.status().code(), absl::StatusCode::kUnavailable) << verdict.status();
    EXPECT_THAT(verdict.status().ToString(), HasSubstr(client->address()));
    EXPECT_EQ(client->Ping(Soon()).code(), absl::StatusCode::kUnavailable);
  }
}

TEST(ClamdClientOutageTest, HungClamdIsUnavailableAtTheDeadline) {
  ClamdServer clamd;
  const std::unique_ptr<ClamdClient> client = Client(clamd.unix_address());
  clamd.Pause();
  const absl::Time start = absl::Now();
  auto verdict = client->Scan(Eicar(), start + absl::Milliseconds(300));
  const absl::Duration waited = absl::Now() - start;
  EXPECT_EQ(verdict.status().code(), absl::StatusCode::kUnavailable) << verdict.status();
  EXPECT_THAT(verdict.status().ToString(), HasSubstr("deadline exceeded"));
  EXPECT_GE(waited, absl::Milliseconds(300));
  EXPECT_LT(waited, absl::Seconds(3));
  EXPECT_EQ(client->Ping(absl::Now() + absl::Milliseconds(100)).code(),
            absl::StatusCode::kUnavailable);
  clamd.Resume();
  auto after = client->Scan(Eicar(), Soon());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(after->infected);
}

TEST(ClamdClientCreateTest, RefusesMalformedAddresses) {
  for (const std::string& address : std::vector<std::string>{
           "", "localhost", "localhost:", "localhost:0", "localhost:70000", ":3310", "unix:",
        "unix:relative/clamd.sock", "[::1:3310", "/" + std::string(200, 'a')}) {
    auto client = ClamdClient::Create({address});
    EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument) << address;
  }
  for (const std::string& address : std::vector<std::string>{
           "unix:/run/clamav/clamd.ctl", "/run/clamav/clamd.ctl", "clamd:3310", "[::1]:3310"}) {
    EXPECT_TRUE(ClamdClient::Create({address}).ok()) << address;
  }
  EXPECT_EQ(ClamdClient::Create({"clamd:3310", 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseScanReplyTest, ReadsEachKindOfReply) {
  EXPECT_FALSE(ParseScanReply("stream: OK")->infected);
  auto found = ParseScanReply("stream: Win.Test.EICAR_HDB-1 FOUND");
  ASSERT_TRUE(found.ok());
  EXPECT_TRUE(found->infected);
  EXPECT_EQ(found->signature, "Win.Test.EICAR_HDB-1");
  EXPECT_EQ(ParseScanReply("INSTREAM size limit exceeded. ERROR").status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ParseScanReply("stream: Can't allocate memory ERROR").status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(ParseScanReply("stream:  FOUND").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParseScanReply("UNKNOWN COMMAND").status().code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace switchboard::scan
