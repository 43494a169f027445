#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace switchboard::validation {

// Checks of client input shared by every service's domain logic. Each returns
// OK or InvalidArgument whose message starts with the field's name, so that
// a client learns which field to fix: "agent_id: must not be empty".

// True if `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing
// above U+10FFFF).
bool IsValidUtf8(absl::string_view text);

// Number of code points in valid UTF-8 `text`.
size_t CountCodePoints(absl::string_view text);

// An identifier: 1 to `max_bytes` characters of ASCII letters, digits and
// ". _ - @ :".
absl::Status ValidateId(absl::string_view field, absl::string_view id,
                        size_t max_bytes = 128);

// Free text: valid UTF-8, at most `max_code_points` code points, no NUL or
// other C0 control characters except tab, newline and carriage return.
// Empty is allowed unless `required`.
absl::Status ValidateText(absl::string_view field, absl::string_view text,
                          size_t max_code_points, bool required = false);

// An idempotency key chosen by the client (`request_id`): empty (none), or 1
// to 64 ASCII letters, digits, '-' and '_'.
absl::Status ValidateRequestId(absl::string_view field, absl::string_view id);

}  // namespace switchboard::validation
