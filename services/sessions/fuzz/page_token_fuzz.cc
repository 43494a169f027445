// Fuzzes the page tokens of ListSessions and ListMessages (rules.h), which
// clients hand back verbatim: any bytes must parse or be refused with
// INVALID_ARGUMENT, and what parses must come back the same through a token
// made from it.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "services/sessions/rules.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace switchboard::sessions;
  const std::string token(reinterpret_cast<const char*>(data), size);

  if (absl::StatusOr<std::pair<int64_t, std::string>> page = ParseSessionPageToken(token);
      page.ok()) {
    absl::StatusOr<std::pair<int64_t, std::string>> again =
        ParseSessionPageToken(SessionPageToken(page->first, page->second));
    if (!again.ok() || *again != *page) abort();
  } else if (page.status().code() != absl::StatusCode::kInvalidArgument) {
    abort();
  }

  if (absl::StatusOr<int64_t> last = ParseMessagePageToken(token); last.ok()) {
    if (*last < 0) abort();
    absl::StatusOr<int64_t> again = ParseMessagePageToken(MessagePageToken(*last));
    if (!again.ok() || *again != *last) abort();
  } else if (last.status().code() != absl::StatusCode::kInvalidArgument) {
    abort();
  }
  return 0;
}
