// Fuzzes StripMetadata over the formats it rewrites, whose parsers read
// customers' uploads: the first byte picks JPEG, PNG or WebP (modulo 3), the
// rest is the file. StripMetadata must refuse with INVALID_ARGUMENT, or
// return a file no larger than its input that a second pass leaves as it is
// (nothing left to remove, every length still consistent).

#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "libs/filetype/strip_metadata.h"

namespace {

using switchboard::filetype::FileType;
using switchboard::filetype::StripMetadata;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr FileType kTypes[] = {FileType::kJpeg, FileType::kPng, FileType::kWebp};
  const FileType type = kTypes[data[0] % 3];
  const absl::string_view file(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto stripped = StripMetadata(type, file);
  if (!stripped.ok()) {
    if (stripped.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  if (!stripped->kept_reason.empty() || stripped->bytes.size() > file.size()) std::abort();
  auto again = StripMetadata(type, stripped->bytes);
  if (!again.ok() || again->bytes != stripped->bytes || !again->removed.empty()) std::abort();
  return 0;
}
