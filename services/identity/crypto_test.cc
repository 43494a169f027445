#include "services/identity/crypto.h"

#include <array>

#include "gtest/gtest.h"
#include "services/identity/totp.h"

namespace switchboard::identity {
namespace {

// RFC 6238 appendix B, SHA-1, secret "12345678901234567890".
struct TotpVector {
  int64_t unix_seconds;
  const char* eight_digits;
};
constexpr TotpVector kRfc6238[] = {
    {59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
    {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
};
constexpr char kRfcSecret[] = "12345678901234567890";

TEST(TotpTest, MatchesRfc6238Sha1Vectors) {
  for (const TotpVector& v : kRfc6238) {
    const int64_t step = TotpStep(absl::FromUnixSeconds(v.unix_seconds));
    EXPECT_EQ(Hotp(kRfcSecret, step, 8), v.eight_digits) << v.unix_seconds;
    // Six digits are the last six of the eight (the same value mod 10^6).
    EXPECT_EQ(Hotp(kRfcSecret, step, 6), std::string(v.eight_digits).substr(2))
        << v.unix_seconds;
  }
}

TEST(TotpTest, MatchesRfc4226HotpVectors) {
  constexpr std::array<const char*, 10> kExpected = {
      "755224", "287082", "359152", "969429", "338314",
      "254676", "287922", "162583", "399871", "520489"};
  for (int counter = 0; counter < 10; ++counter) {
    EXPECT_EQ(Hotp(kRfcSecret, counter, 6), kExpected[counter]) << counter;
  }
}

TEST(TotpTest, AcceptsOneStepOfSkewEitherWayOnly) {
  const absl::Time now = absl::FromUnixSeconds(1111111111);  // step 37037037
  const int64_t step = TotpStep(now);
  EXPECT_EQ(MatchTotp(kRfcSecret, Hotp(kRfcSecret, step, 6), now), step);
  EXPECT_EQ(MatchTotp(kRfcSecret, Hotp(kRfcSecret, step - 1, 6), now), step - 1);
  EXPECT_EQ(MatchTotp(kRfcSecret, Hotp(kRfcSecret, step + 1, 6), now), step + 1);
  EXPECT_EQ(MatchTotp(kRfcSecret, Hotp(kRfcSecret, step - 2, 6), now), -1);
  EXPECT_EQ(MatchTotp(kRfcSecret, Hotp(kRfcSecret, step + 2, 6), now), -1);
  EXPECT_EQ(MatchTotp(kRfcSecret, "12345", now), -1);
}

TEST(TotpTest, Base32MatchesRfc4648) {
  EXPECT_EQ(Base32Encode(""), "");
  EXPECT_EQ(Base32Encode("f"), "MY");
  EXPECT_EQ(Base32Encode("fo"), "MZXQ");
  EXPECT_EQ(Base32Encode("foo"), "MZXW6");
  EXPECT_EQ(Base32Encode("foob"), "MZXW6YQ");
  EXPECT_EQ(Base32Encode("fooba"), "MZXW6YTB");
  EXPECT_EQ(Base32Encode("foobar"), "MZXW6YTBOI");
  EXPECT_EQ(Base32Encode(std::string(20, '\xff')).size(), 32u);
}

TEST(CryptoTest, RandomDigitsAreDigitsAndRoughlyUniform) {
  std::array<int, 10> counts{};
  constexpr int kCodes = 20'000;
  for (int i = 0; i < kCodes; ++i) {
    const std::string code = RandomDigits(6);
    ASSERT_EQ(code.size(), 6u);
    for (char c : code) {
      ASSERT_TRUE(c >= '0' && c <= '9');
      ++counts[c - '0'];
    }
  }
  // 120,000 digits: each count is 12,000 with a standard deviation of ~104,
  // so 600 is over 5 deviations. Plain `byte % 10` would favour 0-5 by
  // 26/256 against 25/256 (about +290 each over 6-9): the difference of the
  // two groups' means catches that.
  for (int count : counts) EXPECT_NEAR(count, 12'000, 600);
  int low = 0, high = 0;
  for (int d = 0; d < 6; ++d) low += counts[d];
  for (int d = 6; d < 10; ++d) high += counts[d];
  EXPECT_NEAR(static_cast<double>(low) / 6 - static_cast<double>(high) / 4, 0, 250);
}

TEST(CryptoTest, RandomIdsAreUniqueAndPrefixed) {
  const std::string a = RandomId("chl_");
  const std::string b = RandomId("chl_");
  EXPECT_EQ(a.size(), 36u);
  EXPECT_EQ(a.substr(0, 4), "chl_");
  EXPECT_NE(a, b);
}

TEST(CryptoTest, CodeHashesAreKeyedAndBoundToTheChallenge) {
  CodeHasher hasher(std::string(32, 'k'));
  const std::string hash = hasher.Hash("chl_1", "123456");
  EXPECT_EQ(hash.size(), 32u);
  EXPECT_EQ(hash.find("123456"), std::string::npos);
  EXPECT_TRUE(hasher.Matches(hash, "chl_1", "123456"));
  EXPECT_FALSE(hasher.Matches(hash, "chl_1", "123457"));
  EXPECT_FALSE(hasher.Matches(hash, "chl_2", "123456"));
  EXPECT_FALSE(hasher.Matches("", "chl_1", "123456"));
  CodeHasher other(std::string(32, 'o'));
  EXPECT_FALSE(other.Matches(hash, "chl_1", "123456"));
}

TEST(CryptoTest, DerivedKeysDifferByPurpose) {
  const std::string master(32, 'm');
  EXPECT_EQ(DeriveKey(master, "a").size(), 32u);
  EXPECT_NE(DeriveKey(master, "a"), DeriveKey(master, "b"));
  EXPECT_EQ(DeriveKey(master, "a"), DeriveKey(master, "a"));
}

TEST(CryptoTest, SecretBoxRoundTripsAndDetectsTampering) {
  SecretBox box(std::string(32, 'k'));
  const std::string secret = "a twenty byte secret";
  const std::string sealed = box.Seal(secret, "cust-1");
  EXPECT_EQ(sealed.size(), 12 + secret.size() + 16);
  EXPECT_EQ(sealed.find(secret), std::string::npos);
  EXPECT_NE(box.Seal(secret, "cust-1"), sealed);  // fresh nonce each time
  absl::StatusOr<std::string> opened = box.Open(sealed, "cust-1");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, secret);

  EXPECT_TRUE(absl::IsDataLoss(box.Open(sealed, "cust-2").status()));
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string altered = sealed;
    altered[i] ^= 0x01;
    EXPECT_TRUE(absl::IsDataLoss(box.Open(altered, "cust-1").status())) << i;
  }
  EXPECT_TRUE(absl::IsDataLoss(box.Open(sealed.substr(0, 20), "cust-1").status()));
  SecretBox other(std::string(32, 'o'));
  EXPECT_TRUE(absl::IsDataLoss(other.Open(sealed, "cust-1").status()));
}

TEST(CryptoTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace switchboard::identity
