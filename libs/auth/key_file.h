#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// Key files: small secret files read whole and created once, never replaced
// in place. Errors name the path, never the contents.

namespace switchboard::auth {

// Minimum length of a symmetric key: as long as an HMAC-SHA256 output
// (RFC 2104).
inline constexpr size_t kMinKeyBytes = 32;

// Reads the whole file at `path`. NotFound if it does not exist,
// InvalidArgument if it is longer than `max_bytes`, the errno-derived code
// for other I/O failures.
absl::StatusOr<std::string> ReadKeyFile(const std::string& path, size_t max_bytes);

// Creates `path` holding `contents`, mode 0600: written to a private
// temporary file beside it, synced, then linked into place. link(2) never
// replaces an existing file and readers never see a half-written key.
// AlreadyExists if `path` exists (another process may have won a race);
// the errno-derived code for other failures. The parent folder must exist.
absl::Status CreateKeyFile(const std::string& path, absl::string_view contents);

// Loads a symmetric key from `path`: hex text (surrounding whitespace, such
// as a trailing newline, is ignored) of at least kMinKeyBytes bytes once
// decoded.
//
// If the file does not exist and `create_if_missing`, writes a new random
// 32-byte key (OpenSSL RAND_bytes) there with CreateKeyFile and returns it,
// so processes starting together on one data folder all end up with the
// same key. Nothing but the file is created.
//
// Errors: NotFound if the file is missing and not to be created;
// InvalidArgument if it is not hex or too short; the errno-derived code for
// I/O failures.
absl::StatusOr<std::string> LoadOrCreateKey(const std::string& path, bool create_if_missing);

}  // namespace switchboard::auth
