#pragma once

#include <initializer_list>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>

#include "absl/strings/str_cat.h"

namespace switchboard::log {

// One value of a structured log line; numbers and booleans stay unquoted.
class Value {
 public:
  Value(absl::string_view s) : text_(s), quoted_(true) {}
  Value(const std::string& s) : text_(s), quoted_(true) {}
  Value(const char* s) : text_(s), quoted_(true) {}
  Value(bool b) : text_(b ? "true" : "false"), quoted_(false) {}
  template <typename Number,
            typename = std::enable_if_t<std::is_arithmetic_v<Number>>>
  Value(Number n) : text_(absl::StrCat(n)), quoted_(false) {}

  const std::string& text() const { return text_; }
  bool quoted() const { return quoted_; }

 private:
  std::string text_;
  bool quoted_;
};

using Field = std::pair<absl::string_view, Value>;

enum class Level { kInfo, kWarning, kError };

// Writes one JSON object per line to stderr:
//   {"ts":"2026-11-27T15:20:39.123Z","level":"info","event":"server_started","port":7104}
// `event` is a short snake_case name of what happened. Thread-safe; each line
// is written with a single write(2) so lines from threads never interleave.
// Never log secrets (tokens, one-time codes): callers pass only safe fields.
void Write(Level level, absl::string_view event,
           std::initializer_list<Field> fields = {});

inline void Info(absl::string_view event,
                 std::initializer_list<Field> fields = {}) {
  Write(Level::kInfo, event, fields);
}
inline void Warning(absl::string_view event,
                    std::initializer_list<Field> fields = {}) {
  Write(Level::kWarning, event, fields);
}
inline void Error(absl::string_view event,
                  std::initializer_list<Field> fields = {}) {
  Write(Level::kError, event, fields);
}

// Formats the line Write would print, without the trailing newline.
std::string Format(Level level, absl::string_view event,
                   std::initializer_list<Field> fields);

// Escapes `s` as the inside of a JSON string (quotes, backslashes, control
// characters; invalid UTF-8 bytes become U+FFFD).
std::string JsonEscape(absl::string_view s);

}  // namespace switchboard::log
