#include "libs/auth/keys.h"

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"

namespace switchboard::auth {
namespace {

SigningKey NewKey() {
  absl::StatusOr<SigningKey> key = SigningKey::Generate();
  EXPECT_TRUE(key.ok()) << key.status();
  return *std::move(key);
}

// A JWK of `key` with the members given, as text.
std::string Jwk(const SigningKey& key, absl::string_view extra = "",
                absl::string_view kid = "") {
  return absl::StrCat(R"({"kty":"EC","crv":"P-256","kid":")", kid.empty() ? key.kid() : kid,
                      R"(","x":")", Base64UrlEncode(key.public_key().x()), R"(","y":")",
                      Base64UrlEncode(key.public_key().y()), "\"", extra, "}");
}

TEST(Base64UrlTest, RoundTripsAndRefusesOtherForms) {
  std::string bytes;
  for (const std::string& data : {std::string(""), std::string("a"), std::string("ab"),
                                  std::string("abc"), std::string("\xff\xfe\x00", 3)}) {
    ASSERT_TRUE(Base64UrlDecode(Base64UrlEncode(data), &bytes)) << data;
    EXPECT_EQ(bytes, data);
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(Base64UrlDecode("YQ==", &bytes));  // padding
  EXPECT_FALSE(Base64UrlDecode("+/8", &bytes));   // standard alphabet
  EXPECT_FALSE(Base64UrlDecode("YR", &bytes));    // nonzero unused bits ("YQ" is canonical)
  EXPECT_FALSE(Base64UrlDecode("YQ E", &bytes));
  EXPECT_FALSE(Base64UrlDecode("Y", &bytes));
}

TEST(SigningKeyTest, SignsWhatOnlyItsPublicKeyVerifies) {
  SigningKey key = NewKey();
  SigningKey other = NewKey();
  absl::StatusOr<std::string> signature = key.Sign("header.payload");
  ASSERT_TRUE(signature.ok()) << signature.status();
  EXPECT_EQ(signature->size(), 64u);
  EXPECT_TRUE(key.public_key().Verify("header.payload", *signature));
  EXPECT_FALSE(key.public_key().Verify("header.payloaD", *signature));
  EXPECT_FALSE(other.public_key().Verify("header.payload", *signature));
  std::string flipped = *signature;
  flipped[10] ^= 1;
  EXPECT_FALSE(key.public_key().Verify("header.payload", flipped));
  EXPECT_FALSE(key.public_key().Verify("header.payload", signature->substr(0, 63)));
  EXPECT_FALSE(key.public_key().Verify("header.payload", std::string(64, '\0')));
  EXPECT_FALSE(key.public_key().Verify("header.payload", std::string(64, '\xff')));
}

TEST(SigningKeyTest, PemRoundTripsAndKeepsTheKid) {
  SigningKey key = NewKey();
  const std::string pem = key.ToPem();
  EXPECT_TRUE(absl::StartsWith(pem, "-----BEGIN PRIVATE KEY-----")) << pem;
  absl::StatusOr<SigningKey> loaded = SigningKey::FromPem(pem);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->kid(), key.kid());
  absl::StatusOr<std::string> signature = loaded->Sign("x");
  ASSERT_TRUE(signature.ok());
  EXPECT_TRUE(key.public_key().Verify("x", *signature));
}

TEST(SigningKeyTest, RefusesWhatIsNotAP256PrivateKey) {
  SigningKey key = NewKey();
  const std::string pem = key.ToPem();
  for (const std::string& bad :
       {std::string(""), std::string("not a key"), pem.substr(0, pem.size() / 2),
        absl::StrReplaceAll(pem, {{"PRIVATE KEY", "PUBLIC KEY"}}),
        // An Ed25519 key: not ES256.
        std::string("-----BEGIN PRIVATE KEY-----\n"
                    "MC4CAQAwBQYDK2VwBCIEIHVjI6cLsUpeNOkdRIrRVVsF0WTD+z+Ixb2tXVTIBxuW\n"
                    "-----END PRIVATE KEY-----\n")}) {
    absl::StatusOr<SigningKey> loaded = SigningKey::FromPem(bad);
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(SigningKeyTest, KidIsTheRfc7638Thumbprint) {
  // The P-256 key of RFC 7515 appendix A.3. RFC 7638 gives no EC example;
  // the expected value is the SHA-256 of the canonical JWK computed apart
  // (Python's hashlib), pinned so that kids in deployed JWKS cannot drift.
  std::string x;
  std::string y;
  ASSERT_TRUE(Base64UrlDecode("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", &x));
  ASSERT_TRUE(Base64UrlDecode("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", &y));
  absl::StatusOr<PublicKey> key = PublicKey::FromCoordinates(x, y);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->Thumbprint(), "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
}

TEST(PublicKeyTest, RefusesPointsOffTheCurve) {
  SigningKey key = NewKey();
  std::string y = key.public_key().y();
  y[31] ^= 1;
  EXPECT_FALSE(PublicKey::FromCoordinates(key.public_key().x(), y).ok());
  EXPECT_FALSE(PublicKey::FromCoordinates(std::string(32, '\0'), std::string(32, '\0')).ok());
  EXPECT_FALSE(PublicKey::FromCoordinates("short", "short").ok());
}

TEST(KeySetTest, JsonRoundTrips) {
  SigningKey a = NewKey();
  SigningKey b = NewKey();
  KeySet set;
  ASSERT_TRUE(set.Add(a.kid(), a.public_key()).ok());
  ASSERT_TRUE(set.Add("b-2026", b.public_key(), "routing").ok());
  absl::StatusOr<KeySet> parsed = KeySet::FromJson(set.ToJson());
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << set.ToJson();
  ASSERT_EQ(parsed->keys().size(), 2u);
  const KeySet::Key* found = parsed->Find("b-2026");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->service, "routing");
  EXPECT_EQ(found->key.x(), b.public_key().x());
  EXPECT_EQ(parsed->Find(a.kid())->service, "");
  EXPECT_EQ(parsed->Find("missing"), nullptr);
  EXPECT_NE(parsed->generation(), set.generation());
}

TEST(KeySetTest, SkipsKeysThatAreNotEs256) {
  SigningKey a = NewKey();
  const std::string json = absl::StrCat(
      R"({"keys":[{"kty":"RSA","kid":"rsa-1","n":"AQAB","e":"AQAB"},)",
      Jwk(a, R"(,"alg":"ES384")", "es384"), ",", Jwk(a, R"(,"use":"enc")", "enc"), ",",
      Jwk(a, R"(,"alg":"ES256","use":"sig")"), "]}");
  absl::StatusOr<KeySet> parsed = KeySet::FromJson(json);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->keys().size(), 1u);
  EXPECT_EQ(parsed->keys()[0].kid, a.kid());
}

TEST(KeySetTest, RefusesBadSetsNamingTheKey) {
  SigningKey a = NewKey();
  SigningKey b = NewKey();
  struct Case {
    std::string json;
    std::string message;
  };
  const std::string x = Base64UrlEncode(a.public_key().x());
  for (const Case& c : std::vector<Case>{
           {"", "not a JSON object"},
           {"[]", "not a JSON object"},
           {R"({"keys":{}})", "no \"keys\" array"},
           {R"({"keys":[]})", "no ES256 signing key"},
           {R"({"keys":[5]})", "keys[0]: not a JSON object"},
           {absl::StrCat(R"({"keys":[)", Jwk(a), ",", Jwk(b, "", a.kid()), "]}"),
            "keys[1].kid: \"" + a.kid() + "\" is used twice"},
           {absl::StrCat(R"({"keys":[)", Jwk(a, "", "x"), ",",
                         absl::StrReplaceAll(Jwk(b), {{R"("kid")", R"("kidd")"}}), "]}"),
            "keys[1].kid: missing"},
           {absl::StrCat(R"({"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":")", x,
                         R"(","y":"AAAA"}]})"),
            "keys[0].y: not 32 bytes"},
           {absl::StrCat(R"({"keys":[)", Jwk(a, R"(,"d":"c2VjcmV0")"), "]}"),
            "keys[0]: holds private key material"},
           {R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})", "keys[0]: holds private key material"},
           {absl::StrCat(R"({"keys":[)", Jwk(a, R"(,"service":"Routing!")"), "]}"),
            "keys[0].service: only a-z"},
       }) {
    absl::StatusOr<KeySet> parsed = KeySet::FromJson(c.json);
    ASSERT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_TRUE(absl::StrContains(parsed.status().message(), c.message))
        << parsed.status() << "\nwanted: " << c.message;
  }
}

TEST(KeySetTest, GenerationsDiffer) {
  std::set<uint64_t> seen;
  for (int i = 0; i < 5; ++i) seen.insert(KeySet().generation());
  EXPECT_EQ(seen.size(), 5u);
}

}  // namespace
}  // namespace switchboard::auth
