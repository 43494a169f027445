#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

// libmagic's handle (magic.h's magic_t), declared here so that callers do not
// include magic.h.
struct magic_set;

namespace switchboard::filetype {

// The kinds of file customers may attach (screenshots, screen recordings,
// documents, logs). Anything else is refused.
enum class FileType { kPng, kJpeg, kGif, kWebp, kHeic, kMp4, kQuickTime, kPdf, kText };

// The canonical media type to store and serve the file with, e.g. "image/png",
// "video/quicktime", "text/plain".
absl::string_view MediaType(FileType type);

// Decides what a file is from its bytes, with libmagic and Debian's compiled
// magic database (libmagic-mgc), never trusting the name or the declared
// type.
//
// Thread-safe: libmagic's handle is not, so calls take turns on one handle
// (a call costs tens of microseconds: libmagic reads only the file's head,
// and at most `kMaxSniffBytes` of it).
class FileTypeClassifier {
 public:
  // Bytes handed to libmagic at most; beyond them a file is not examined.
  static constexpr size_t kMaxSniffBytes = 1 << 20;

  // FAILED_PRECONDITION if libmagic or its database cannot be loaded.
  static absl::StatusOr<std::unique_ptr<FileTypeClassifier>> Create();
  ~FileTypeClassifier();
  FileTypeClassifier(const FileTypeClassifier&) = delete;
  FileTypeClassifier& operator=(const FileTypeClassifier&) = delete;

  // The file's type if it is on the allowed list and agrees with
  // `declared_content_type` (the client's Content-Type: parameters such as
  // "; charset=utf-8" and case are ignored, image/jpg counts as image/jpeg and
  // image/heif as image/heic; "" or application/octet-stream means the
  // client did not know). Otherwise INVALID_ARGUMENT whose message names what
  // the bytes are (media type and libmagic's description, e.g. "ELF 64-bit
  // LSB executable") and the declared type. An empty file is refused too.
  absl::StatusOr<FileType> Classify(absl::string_view bytes,
                                    absl::string_view declared_content_type) const;

 private:
  explicit FileTypeClassifier(magic_set* cookie) : cookie_(cookie) {}

  // libmagic's media type and description of `bytes`.
  struct Sniffed {
    std::string media_type;
    std::string description;
  };
  Sniffed Sniff(absl::string_view bytes) const;

  mutable absl::Mutex mu_;
  magic_set* const cookie_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace switchboard::filetype
