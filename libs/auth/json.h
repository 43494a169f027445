#pragma once

#include <string>

#include "absl/strings/string_view.h"

// The little JSON writing that tokens and key sets need (reading goes
// through protobuf's JSON parser).

namespace switchboard::auth {

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code
// points above U+10FFFF).
bool IsValidUtf8(absl::string_view text);

// Appends `text` to `out` as a JSON string, quotes included, escaping quotes,
// backslashes and control characters. False, with `out` unchanged, if `text`
// is not valid UTF-8.
bool AppendJsonString(absl::string_view text, std::string* out);

}  // namespace switchboard::auth
