#include "libs/auth/key_set_file.h"

#include <stdio.h>

#include <fstream>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "libs/storage/test_dir.h"

namespace switchboard::auth {
namespace {

SigningKey NewKey() {
  absl::StatusOr<SigningKey> key = SigningKey::Generate();
  EXPECT_TRUE(key.ok()) << key.status();
  return *std::move(key);
}

std::string SetOf(std::initializer_list<const SigningKey*> keys) {
  KeySet set;
  for (const SigningKey* key : keys) EXPECT_TRUE(set.Add(key->kid(), key->public_key()).ok());
  return set.ToJson();
}

// Replaces the file the way operators should: a new file renamed over it.
void Replace(const std::string& path, const std::string& contents) {
  const std::string temp = path + ".new";
  std::ofstream(temp) << contents;
  ASSERT_EQ(rename(temp.c_str(), path.c_str()), 0);
}

class KeySetFileTest : public ::testing::Test {
 protected:
  std::string path_ = storage::MakeTempDir() + "/access.jwks";
  FakeClock clock_;
  SigningKey old_key_ = NewKey();
  SigningKey new_key_ = NewKey();
};

TEST_F(KeySetFileTest, ReloadsWhenTheFileChangesAfterTheInterval) {
  Replace(path_, SetOf({&old_key_}));
  auto source = WatchKeySetFile(path_, absl::Seconds(10), &clock_);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_NE((*source)->Keys()->Find(old_key_.kid()), nullptr);

  // Rotation, step 1: the new key is added.
  Replace(path_, SetOf({&old_key_, &new_key_}));
  clock_.Advance(absl::Seconds(9));
  EXPECT_EQ((*source)->Keys()->Find(new_key_.kid()), nullptr) << "checked before the interval";
  clock_.Advance(absl::Seconds(1));
  EXPECT_NE((*source)->Keys()->Find(new_key_.kid()), nullptr);
  EXPECT_NE((*source)->Keys()->Find(old_key_.kid()), nullptr);

  // Step 2: the old key is removed.
  Replace(path_, SetOf({&new_key_}));
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ((*source)->Keys()->Find(old_key_.kid()), nullptr);
  EXPECT_NE((*source)->Keys()->Find(new_key_.kid()), nullptr);
}

TEST_F(KeySetFileTest, KeepsTheLastGoodSetWhenTheFileBreaksOrGoes) {
  Replace(path_, SetOf({&old_key_}));
  auto source = WatchKeySetFile(path_, absl::Seconds(1), &clock_);
  ASSERT_TRUE(source.ok()) << source.status();
  const uint64_t generation = (*source)->Keys()->generation();

  Replace(path_, "{\"keys\": [");  // caught half-written
  clock_.Advance(absl::Seconds(1));
  EXPECT_NE((*source)->Keys()->Find(old_key_.kid()), nullptr);
  EXPECT_EQ((*source)->Keys()->generation(), generation);

  ASSERT_EQ(remove(path_.c_str()), 0);
  clock_.Advance(absl::Seconds(1));
  EXPECT_NE((*source)->Keys()->Find(old_key_.kid()), nullptr);

  // Fixed: read again.
  Replace(path_, SetOf({&new_key_}));
  clock_.Advance(absl::Seconds(1));
  EXPECT_NE((*source)->Keys()->Find(new_key_.kid()), nullptr);
  EXPECT_NE((*source)->Keys()->generation(), generation);
}

TEST_F(KeySetFileTest, AnUnchangedFileKeepsItsGeneration) {
  Replace(path_, SetOf({&old_key_}));
  auto source = WatchKeySetFile(path_, absl::Seconds(1), &clock_);
  ASSERT_TRUE(source.ok());
  const uint64_t generation = (*source)->Keys()->generation();
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ((*source)->Keys()->generation(), generation);
}

TEST_F(KeySetFileTest, StartsOnlyWithAUsableSet) {
  auto missing = WatchKeySetFile(path_, absl::Seconds(1), &clock_);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(missing.status().message(), path_));
  Replace(path_, R"({"keys": []})");
  auto empty = WatchKeySetFile(path_, absl::Seconds(1), &clock_);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(empty.status().message(), path_));
  Replace(path_, std::string(kMaxKeySetFileBytes + 1, ' '));
  EXPECT_EQ(WatchKeySetFile(path_, absl::Seconds(1), &clock_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace switchboard::auth
