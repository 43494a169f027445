#include "libs/auth/key_folder.h"

#include <dirent.h>
#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "libs/auth/policy.h"
#include "libs/storage/test_dir.h"

namespace switchboard::auth {
namespace {

std::set<std::string> FilesIn(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.insert(name);
  }
  closedir(d);
  return names;
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int Mode(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

TEST(KeyFolderTest, WritesEveryKeyAndReadsThemBack) {
  const std::string dir = storage::MakeTempDir() + "/keys";
  absl::StatusOr<KeyFolder> keys = KeyFolder::Generate();
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_TRUE(WriteKeyFolder(*keys, dir).ok());

  std::set<std::string> expected = {"access.jwks", "services.jwks", "verification.jwks",
                                     "development-issuer.pem", "verification.pem"};
  for (const std::string& service : ServiceNames()) expected.insert(service + ".pem");
  EXPECT_EQ(FilesIn(dir), expected);
  EXPECT_EQ(FilesIn(dir + "/.."), std::set<std::string>{"keys"}) << "no temporary left behind";
  EXPECT_EQ(Mode(dir), 0700);
  EXPECT_EQ(Mode(dir + "/routing.pem"), 0600);
  EXPECT_EQ(Mode(dir + "/development-issuer.pem"), 0600);
  EXPECT_EQ(Mode(dir + "/services.jwks"), 0644);

  absl::StatusOr<KeySet> services = KeySet::FromJson(Read(dir + "/services.jwks"));
  ASSERT_TRUE(services.ok()) << services.status();
  ASSERT_EQ(services->keys().size(), ServiceNames().size());
  const KeySet::Key* routing = services->Find(keys->services.at("routing").kid());
  ASSERT_NE(routing, nullptr);
  EXPECT_EQ(routing->service, "routing");
  for (const char* file : {"access.jwks", "services.jwks", "verification.jwks"}) {
    EXPECT_FALSE(absl::StrContains(Read(dir + "/" + file), "PRIVATE")) << file;
  }

  absl::StatusOr<KeyFolder> read = ReadKeyFolder(dir);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->issuer.kid(), keys->issuer.kid());
  EXPECT_EQ(read->verification.kid(), keys->verification.kid());
  EXPECT_EQ(read->services.at("bot").kid(), keys->services.at("bot").kid());
  EXPECT_NE(read->issuer.kid(), read->verification.kid());

  // A folder is never replaced.
  absl::StatusOr<KeyFolder> other = KeyFolder::Generate();
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(WriteKeyFolder(*other, dir).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadKeyFolder(dir)->issuer.kid(), keys->issuer.kid());
}

TEST(KeyFolderTest, ConcurrentStartsShareOneFolder) {
  const std::string dir = storage::MakeTempDir() + "/keys";
  std::vector<std::thread> threads;
  std::vector<int> made(6, -1);
  for (int& m : made) {
    threads.emplace_back([&dir, &m] {
      absl::StatusOr<bool> result = EnsureKeyFolder(dir);
      m = result.ok() ? (*result ? 1 : 0) : -1;
    });
  }
  for (std::thread& t : threads) t.join();
  int creators = 0;
  for (int m : made) {
    ASSERT_NE(m, -1);
    creators += m;
  }
  EXPECT_EQ(creators, 1);
  EXPECT_TRUE(ReadKeyFolder(dir).ok());
  EXPECT_EQ(FilesIn(dir + "/..").size(), 1u);
}

TEST(KeyFolderTest, ReadingNamesTheFileAtFault) {
  const std::string dir = storage::MakeTempDir();
  absl::StatusOr<KeyFolder> missing = ReadKeyFolder(dir + "/none");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "development-issuer.pem"));
  std::ofstream(dir + "/bad.pem") << "not a key";
  absl::StatusOr<SigningKey> bad = ReadSigningKeyFile(dir + "/bad.pem");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad.status().message(), dir + "/bad.pem"));
}

}  // namespace
}  // namespace switchboard::auth
