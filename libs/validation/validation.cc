#include "libs/validation/validation.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace switchboard::validation {
namespace {

// Length of the well-formed UTF-8 sequence at text[i], or 0.
size_t SequenceLength(absl::string_view text, size_t i) {
  const auto byte = [&](size_t k) -> unsigned {
    return static_cast<unsigned char>(text[k]);
  };
  const unsigned c = byte(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned min;
  unsigned code;
  if ((c & 0xE0) == 0xC0) {
    n = 2, min = 0x80, code = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, min = 0x800, code = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, min = 0x10000, code = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3F);
  }
  if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
    return 0;
  }
  return n;
}

}  // namespace

bool IsValidUtf8(absl::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t n = SequenceLength(text, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

size_t CountCodePoints(absl::string_view text) {
  size_t count = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

absl::Status ValidateId(absl::string_view field, absl::string_view id,
                        size_t max_bytes) {
  if (id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  }
  if (id.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": longer than ", max_bytes, " characters"));
  }
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == '-' || c == '@' || c == ':';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": only letters, digits and . _ - @ : are allowed"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateText(absl::string_view field, absl::string_view text,
                          size_t max_code_points, bool required) {
  if (required && text.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  }
  if (!IsValidUtf8(text)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not valid UTF-8"));
  }
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\t' && c != '\n' && c != '\r') {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": contains control characters"));
    }
  }
  if (CountCodePoints(text) > max_code_points) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": longer than ", max_code_points, " characters"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequestId(absl::string_view field, absl::string_view id) {
  bool ok = id.size() <= 64;
  for (char c : id) {
    ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": must be 1 to 64 characters of letters, digits, '-' and '_'"));
}

}  // namespace switchboard::validation
