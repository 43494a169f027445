#include "libs/filetype/file_type.h"

#include <magic.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace switchboard::filetype {
namespace {

constexpr absl::string_view kAllowed =
    "PNG, JPEG, GIF, WebP, HEIC, MP4, QuickTime (MOV), PDF, plain text";

// libmagic's descriptions can run long (build ids, interpreters); the head
// says what the file is.
constexpr size_t kMaxDescription = 120;

std::optional<FileType> FromMediaType(absl::string_view media_type) {
  static constexpr struct {
    absl::string_view media_type;
    FileType type;
  } kTypes[] = {
      {"image/png", FileType::kPng},        {"image/jpeg", FileType::kJpeg},
      {"image/jpg", FileType::kJpeg},       {"image/pjpeg", FileType::kJpeg},
      {"image/gif", FileType::kGif},        {"image/webp", FileType::kWebp},
      {"image/heic", FileType::kHeic},      {"image/heif", FileType::kHeic},
      {"video/mp4", FileType::kMp4},        {"video/quicktime", FileType::kQuickTime},
      {"application/pdf", FileType::kPdf},  {"text/plain", FileType::kText},
  };
  for (const auto& entry : kTypes) {
    if (entry.media_type == media_type) return entry.type;
  }
  return std::nullopt;
}

// "Image/PNG; charset=x" -> "image/png". libmagic sometimes appends remarks
// to its media type too ("application/x-executable, no program header").
std::string Essence(absl::string_view content_type) {
  const size_t end = content_type.find_first_of(";, ");
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(content_type.substr(0, end)));
}

}  // namespace

absl::string_view MediaType(FileType type) {
  switch (type) {
    case FileType::kPng:
      return "image/png";
    case FileType::kJpeg:
      return "image/jpeg";
    case FileType::kGif:
      return "image/gif";
    case FileType::kWebp:
      return "image/webp";
    case FileType::kHeic:
      return "image/heic";
    case FileType::kMp4:
      return "video/mp4";
    case FileType::kQuickTime:
      return "video/quicktime";
    case FileType::kPdf:
      return "application/pdf";
    case FileType::kText:
      return "text/plain";
  }
  return "application/octet-stream";
}

absl::StatusOr<std::unique_ptr<FileTypeClassifier>> FileTypeClassifier::Create() {
  magic_t cookie = magic_open(MAGIC_NONE);
  if (cookie == nullptr) {
    return absl::FailedPreconditionError("libmagic: magic_open failed");
  }
  // nullptr: the default database, Debian's /usr/lib/file/magic.mgc.
  if (magic_load(cookie, nullptr) != 0) {
    const std::string error = magic_error(cookie) ? magic_error(cookie) : "unknown error";
    magic_close(cookie);
    return absl::FailedPreconditionError(
        absl::StrCat("libmagic: cannot load the magic database (package libmagic-mgc): ", error));
  }
  return std::unique_ptr<FileTypeClassifier>(new FileTypeClassifier(cookie));
}

FileTypeClassifier::~FileTypeClassifier() { magic_close(cookie_); }

FileTypeClassifier::Sniffed FileTypeClassifier::Sniff(absl::string_view bytes) const {
  bytes = bytes.substr(0, kMaxSniffBytes);
  auto lookup = [&](int flags) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> std::string {
    magic_setflags(cookie_, flags);
    const char* result = magic_buffer(cookie_, bytes.data(), bytes.size());
    if (result != nullptr) return result;
    const char* error = magic_error(cookie_);
    return absl::StrCat("unknown (libmagic: ", error ? error : "no result", ")");
  };
  absl::MutexLock lock(&mu_);
  Sniffed sniffed;
  sniffed.media_type = Essence(lookup(MAGIC_MIME_TYPE));
  sniffed.description = lookup(MAGIC_NONE).substr(0, kMaxDescription);
  return sniffed;
}

absl::StatusOr<FileType> FileTypeClassifier::Classify(
    absl::string_view bytes, absl::string_view declared_content_type) const {
  if (bytes.empty()) return absl::InvalidArgumentError("the file is empty");
  const std::string declared = Essence(declared_content_type);
  const Sniffed sniffed = Sniff(bytes);
  const std::optional<FileType> type = FromMediaType(sniffed.media_type);
  const std::string what = absl::StrCat(sniffed.media_type, " (", sniffed.description, ")");
  if (!type.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the file is ", what, ", which is not an allowed type (declared \"",
        declared_content_type, "\"); allowed: ", kAllowed));
  }
  if (declared.empty() || declared == "application/octet-stream") return *type;
  if (FromMediaType(declared) != type) {
    return absl::InvalidArgumentError(absl::StrCat("declared content type \"",
                                                   declared_content_type,
                                                   "\" does not match the file, which is ", what));
  }
  return *type;
}

}  // namespace switchboard::filetype
