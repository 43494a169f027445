#include "libs/filetype/file_type.h"

#include <magic.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
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

// The client's declared type as it may appear in a message: quoted, escaped
// and cut short.
std::string Quoted(absl::string_view declared) {
  return absl::StrCat("\"", absl::CHexEscape(declared.substr(0, 100)), "\"");
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

namespace {

absl::StatusOr<magic_set*> OpenHandle() {
  magic_t handle = magic_open(MAGIC_MIME_TYPE);
  if (handle == nullptr) return absl::FailedPreconditionError("libmagic: magic_open failed");
  // nullptr: the default database, Debian's /usr/lib/file/magic.mgc.
  if (magic_load(handle, nullptr) != 0) {
    const std::string error = magic_error(handle) ? magic_error(handle) : "unknown error";
    magic_close(handle);
    return absl::FailedPreconditionError(
        absl::StrCat("libmagic: cannot load the magic database (package libmagic-mgc): ", error));
  }
  return handle;
}

}  // namespace

// A borrowed handle, returned to the pool on destruction.
class FileTypeClassifier::Lease {
 public:
  Lease(const FileTypeClassifier& pool, magic_set* handle) : pool_(pool), handle_(handle) {}
  ~Lease() { pool_.Return(handle_); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  // libmagic's answer for `bytes` with `flags` (MAGIC_MIME_TYPE: a media
  // type; MAGIC_NONE: a description).
  std::string Lookup(absl::string_view bytes, int flags) {
    magic_setflags(handle_, flags);
    const char* result = magic_buffer(handle_, bytes.data(), bytes.size());
    if (result != nullptr) return result;
    const char* error = magic_error(handle_);
    return absl::StrCat("unknown (libmagic: ", error ? error : "no result", ")");
  }

 private:
  const FileTypeClassifier& pool_;
  magic_set* const handle_;
};

absl::StatusOr<std::unique_ptr<FileTypeClassifier>> FileTypeClassifier::Create() {
  // One handle now, so that a missing database shows at startup.
  absl::StatusOr<magic_set*> handle = OpenHandle();
  if (!handle.ok()) return handle.status();
  std::unique_ptr<FileTypeClassifier> classifier(new FileTypeClassifier());
  classifier->Return(*handle);
  return classifier;
}

FileTypeClassifier::~FileTypeClassifier() {
  absl::MutexLock lock(&mu_);
  for (magic_set* handle : idle_) magic_close(handle);
}

absl::StatusOr<magic_set*> FileTypeClassifier::Borrow() const {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      magic_set* handle = idle_.back();
      idle_.pop_back();
      return handle;
    }
  }
  return OpenHandle();
}

void FileTypeClassifier::Return(magic_set* handle) const {
  absl::MutexLock lock(&mu_);
  idle_.push_back(handle);
}

absl::StatusOr<FileType> FileTypeClassifier::Classify(
    absl::string_view bytes, absl::string_view declared_content_type) const {
  if (bytes.empty()) return absl::InvalidArgumentError("the file is empty");
  bytes = bytes.substr(0, kMaxSniffBytes);
  absl::StatusOr<magic_set*> handle = Borrow();
  if (!handle.ok()) return handle.status();
  Lease lease(*this, *handle);
  const std::string sniffed = Essence(lease.Lookup(bytes, MAGIC_MIME_TYPE));
  const std::optional<FileType> type = FromMediaType(sniffed);
  const std::string declared = Essence(declared_content_type);
  const bool undeclared = declared.empty() || declared == "application/octet-stream";
  if (type.has_value() && (undeclared || FromMediaType(declared) == type)) return *type;
  // Refused: say what the bytes are in words too.
  const std::string what = absl::StrCat(
      sniffed, " (", lease.Lookup(bytes, MAGIC_NONE).substr(0, kMaxDescription), ")");
  if (!type.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the file is ", what, ", which is not an allowed type (declared ",
        Quoted(declared_content_type), "); allowed: ", kAllowed));
  }
  return absl::InvalidArgumentError(absl::StrCat("declared content type ",
                                                 Quoted(declared_content_type),
                                                 " does not match the file, which is ", what));
}

}  // namespace switchboard::filetype
