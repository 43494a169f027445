#include "libs/auth/key_file.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace switchboard::auth {
namespace {

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = getenv("TEST_TMPDIR");
    std::string pattern =
        absl::StrCat(base != nullptr ? base : "/tmp", "/keyXXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  std::vector<std::string> Files() {
    std::vector<std::string> names;
    DIR* d = opendir(dir_.c_str());
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    closedir(d);
    return names;
  }
  void Write(const std::string& path, const std::string& contents) {
    std::ofstream(path) << contents;
  }

  std::string dir_;
};

TEST_F(KeyFileTest, CreatesPrivateKeyAndLoadsItBack) {
  std::string path = dir_ + "/token.key";
  absl::StatusOr<std::string> created = LoadOrCreateKey(path, true);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->size(), 32u);
  EXPECT_EQ(Files(), std::vector<std::string>{"token.key"});

  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);

  absl::StatusOr<std::string> loaded = LoadOrCreateKey(path, false);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(*loaded, *created);
  absl::StatusOr<std::string> again = LoadOrCreateKey(path, true);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *created);

  // Two fresh keys differ.
  absl::StatusOr<std::string> other = LoadOrCreateKey(dir_ + "/other.key", true);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, *created);
}

TEST_F(KeyFileTest, MissingWithoutCreateIsNotFound) {
  std::string path = dir_ + "/absent.key";
  absl::StatusOr<std::string> key = LoadOrCreateKey(path, false);
  EXPECT_EQ(key.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(key.status().message(), path));
  EXPECT_TRUE(Files().empty());
}

TEST_F(KeyFileTest, CreatesNoFolders) {
  std::string path = dir_ + "/missing/token.key";
  absl::StatusOr<std::string> key = LoadOrCreateKey(path, true);
  EXPECT_FALSE(key.ok());
  EXPECT_TRUE(absl::StrContains(key.status().message(), path));
  EXPECT_TRUE(Files().empty());
}

TEST_F(KeyFileTest, RejectsShortOrNonHexKeys) {
  std::string path = dir_ + "/token.key";
  const std::string short_hex(62, 'a');  // 31 bytes
  Write(path, short_hex);
  absl::StatusOr<std::string> key = LoadOrCreateKey(path, true);
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(key.status().message(), path));
  EXPECT_FALSE(absl::StrContains(key.status().message(), short_hex));

  for (const std::string& bad :
       {std::string(63, 'a'), std::string(64, 'g'), std::string(""),
        absl::StrCat(std::string(32, 'a'), " ", std::string(32, 'a'))}) {
    Write(path, bad);
    EXPECT_EQ(LoadOrCreateKey(path, false).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST_F(KeyFileTest, AcceptsSurroundingWhitespaceAndLongKeys) {
  std::string path = dir_ + "/token.key";
  Write(path, absl::StrCat("  ", std::string(128, 'A'), "\n"));
  absl::StatusOr<std::string> key = LoadOrCreateKey(path, false);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(*key, std::string(64, '\xaa'));
}

TEST_F(KeyFileTest, ConcurrentCreatorsShareOneKey) {
  std::string path = dir_ + "/token.key";
  std::vector<std::string> keys(8);
  std::vector<std::thread> threads;
  for (std::string& key : keys) {
    threads.emplace_back([&] { key = LoadOrCreateKey(path, true).value_or(""); });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& key : keys) {
    EXPECT_EQ(key.size(), 32u);
    EXPECT_EQ(key, keys[0]);
  }
  EXPECT_EQ(Files(), std::vector<std::string>{"token.key"});
}

}  // namespace
}  // namespace switchboard::auth
