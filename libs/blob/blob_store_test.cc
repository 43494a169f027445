#include <curl/curl.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "libs/blob/file_blob_store.h"
#include "libs/blob/s3_blob_store.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/fake_s3/fake_s3.h"

namespace switchboard::blob {
namespace {

using testing::FakeS3Server;

// One store under test, with whatever keeps it alive.
struct Backend {
  std::unique_ptr<FakeS3Server> server;  // S3 only
  std::string root;                      // files only
  std::unique_ptr<BlobStore> store;
};

Backend Files() {
  Backend backend;
  backend.root = storage::MakeTempDir() + "/blobs";
  backend.store = *FileBlobStore::Open(backend.root);
  return backend;
}

S3BlobStore::Options S3Options(const FakeS3Server& server) {
  S3BlobStore::Options options;
  options.endpoint = server.endpoint();
  options.bucket = FakeS3Server::kBucket;
  options.access_key_id = FakeS3Server::kAccessKeyId;
  options.secret_access_key = FakeS3Server::kSecretAccessKey;
  options.timeout = absl::Seconds(5);
  return options;
}

Backend S3() {
  Backend backend;
  backend.server = std::make_unique<FakeS3Server>();
  backend.store = *S3BlobStore::Create(S3Options(*backend.server));
  return backend;
}

class BlobStoreTest : public ::testing::TestWithParam<std::function<Backend()>> {
 protected:
  void SetUp() override { backend_ = GetParam()(); }
  BlobStore& store() { return *backend_.store; }
  Backend backend_;
};

TEST_P(BlobStoreTest, StoresUnderTheContentAddressAndGivesTheBytesBack) {
  std::string png("\x89PNG\r\n\x1a\n", 8);
  png += std::string(100'000, '\0') + "end";
  absl::StatusOr<std::string> key = store().Put(png);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(*key, ContentAddress(png));
  EXPECT_TRUE(IsContentAddress(*key));
  absl::StatusOr<std::string> got = store().Get(*key);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, png);
  EXPECT_TRUE(*store().Exists(*key));
}

TEST_P(BlobStoreTest, TheSameBytesTwiceAreOneBlob) {
  ASSERT_TRUE(store().Put("screenshot").ok());
  ASSERT_TRUE(store().Put("screenshot").ok());
  EXPECT_EQ(*store().List("", 10), (std::vector<std::string>{ContentAddress("screenshot")}));
}

TEST_P(BlobStoreTest, AMissingBlobIsNotFoundAndDeletingItIsFine) {
  const std::string key = ContentAddress("never stored");
  EXPECT_EQ(store().Get(key).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(*store().Exists(key));
  EXPECT_TRUE(store().Delete(key).ok());
  const std::string stored = *store().Put("stored");
  ASSERT_TRUE(store().Delete(stored).ok());
  EXPECT_FALSE(*store().Exists(stored));
  EXPECT_EQ(store().Get(stored).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(BlobStoreTest, KeysThatAreNotContentAddressesAreRefused) {
  for (const std::string& key : {std::string("../../etc/passwd"), std::string("ab"),
                                std::string(64, 'A'), ContentAddress("x") + "/.."}) {
    EXPECT_EQ(store().Get(key).status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_EQ(store().Exists(key).status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_EQ(store().Delete(key).code(), absl::StatusCode::kInvalidArgument) << key;
  }
}

TEST_P(BlobStoreTest, ListWalksEveryBlobInPagesInKeyOrder) {
  std::vector<std::string> keys;
  for (int i = 0; i < 25; ++i) keys.push_back(*store().Put("blob " + std::to_string(i)));
  std::sort(keys.begin(), keys.end());
  std::vector<std::string> walked;
  std::string after;
  while (true) {
    absl::StatusOr<std::vector<std::string>> page = store().List(after, 7);
    ASSERT_TRUE(page.ok()) << page.status();
    if (page->empty()) break;
    ASSERT_LE(page->size(), 7u);
    walked.insert(walked.end(), page->begin(), page->end());
    after = page->back();
  }
  EXPECT_EQ(walked, keys);
}

TEST_P(BlobStoreTest, ConcurrentPutsOfTheSameAndOtherBytes) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        EXPECT_TRUE(store().Put("shared").ok());
        EXPECT_TRUE(store().Put("own " + std::to_string(t) + " " + std::to_string(i)).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(store().List("", 1000)->size(), 81u);
  EXPECT_EQ(*store().Get(ContentAddress("shared")), "shared");
}

INSTANTIATE_TEST_SUITE_P(Stores, BlobStoreTest,
                         ::testing::Values(std::function<Backend()>(Files),
                                           std::function<Backend()>(S3)),
                         [](const auto& info) { return info.index == 0 ? "Files" : "S3"; });

TEST(FileBlobStoreTest, APutInterruptedByACrashLeavesNothing) {
  const std::string root = storage::MakeTempDir() + "/blobs";
  ASSERT_TRUE(FileBlobStore::Open(root).ok());
  // What a crash between write and rename leaves.
  std::ofstream(root + "/.incoming/" + ContentAddress("half") + ".123") << "ha";
  std::unique_ptr<FileBlobStore> store = *FileBlobStore::Open(root);
  EXPECT_TRUE(std::filesystem::is_empty(root + "/.incoming"));
  EXPECT_TRUE(store->List("", 10)->empty());
  EXPECT_FALSE(store->SignedUrl(*store->Put("x"), absl::Minutes(5)).has_value());
}

TEST(S3BlobStoreTest, BadOptionsAreRefusedNamingTheProblem) {
  S3BlobStore::Options options;
  options.endpoint = "127.0.0.1:9000";
  options.bucket = "b";
  options.access_key_id = "k";
  options.secret_access_key = "s";
  absl::Status status = S3BlobStore::Create(options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "http://")) << status;
  options.endpoint = "http://127.0.0.1:9000/path";
  EXPECT_TRUE(absl::StrContains(S3BlobStore::Create(options).status().message(), "no path"));
  options.endpoint = "http://127.0.0.1:9000/";
  options.secret_access_key = "";
  EXPECT_TRUE(absl::StrContains(S3BlobStore::Create(options).status().message(),
                                "secret access key"));
}

TEST(S3BlobStoreTest, AStoreThatIsDownIsUnavailable) {
  FakeS3Server server;
  std::unique_ptr<S3BlobStore> store = *S3BlobStore::Create(S3Options(server));
  const std::string key = *store->Put("kept");
  server.Stop();
  EXPECT_EQ(store->Put("new").status().code(), absl::StatusCode::kUnavailable);
  absl::Status status = store->Get(key).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(status.message(), server.endpoint())) << status;
  EXPECT_EQ(store->Exists(key).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->List("", 10).status().code(), absl::StatusCode::kUnavailable);
}

size_t Collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

TEST(S3BlobStoreTest, ASignedUrlFetchesTheBlobWithAPlainGet) {
  FakeS3Server server;
  FakeClock clock;
  S3BlobStore::Options options = S3Options(server);
  options.clock = &clock;
  std::unique_ptr<S3BlobStore> store = *S3BlobStore::Create(options);
  const std::string key = *store->Put("the withdrawal record");
  std::optional<std::string> url = store->SignedUrl(key, absl::Minutes(5));
  ASSERT_TRUE(url.has_value());
  EXPECT_TRUE(absl::StartsWith(*url, server.endpoint() + "/attachments/" + key + "?"));
  EXPECT_TRUE(absl::StrContains(*url, "X-Amz-Expires=300&")) << *url;
  EXPECT_TRUE(absl::StrContains(*url, "X-Amz-Credential=test-access-key%2F20270115%2F"))
      << *url;
  // No credentials of our own: only what the URL carries.
  CURL* curl = curl_easy_init();
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url->c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  ASSERT_EQ(curl_easy_perform(curl), CURLE_OK);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(body, "the withdrawal record");
  EXPECT_FALSE(store->SignedUrl("not-a-key", absl::Minutes(5)).has_value());
}

}  // namespace
}  // namespace switchboard::blob
