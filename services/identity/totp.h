#pragma once

// HOTP (RFC 4226) and TOTP (RFC 6238) with HMAC-SHA1, as authenticator apps
// implement them, and the base32 form in which apps take the secret.
// Thread-safe.

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace switchboard::identity {

// The TOTP time step.
inline constexpr absl::Duration kTotpPeriod = absl::Seconds(30);

// The HOTP value of `secret` at `counter`, as `digits` decimal digits (6 to
// 8), zero-padded.
std::string Hotp(absl::string_view secret, uint64_t counter, int digits);

// The TOTP step of `time`: whole periods since the Unix epoch.
int64_t TotpStep(absl::Time time);

// The step (among `now`'s step and one step either side) whose 6-digit code
// is `code`, compared in constant time; -1 if none matches.
int64_t MatchTotp(absl::string_view secret, absl::string_view code, absl::Time now);

// RFC 4648 base32, upper case, without padding.
std::string Base32Encode(absl::string_view bytes);

}  // namespace switchboard::identity
