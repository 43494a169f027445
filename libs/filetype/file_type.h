#pragma once

#include <memory>
#include <vector>

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
// Thread-safe. libmagic's handles are not, so each call borrows one of its
// own from a pool that grows to the number of concurrent calls (a handle
// costs about 0.3 MiB and 0.2 ms to open). A call costs about 0.1 ms for an
// image and 1 to 10 ms for text, which libmagic runs its text tests over.
class FileTypeClassifier {
 public:
  // Bytes handed to libmagic at most: a file's type is in its head, and
  // text tests cost time in proportion to the text.
  static constexpr size_t kMaxSniffBytes = 256 * 1024;

  // FAILED_PRECONDITION if libmagic or its database cannot be loaded.
  static absl::StatusOr<std::unique_ptr<FileTypeClassifier>> Create();
  // No call may be running.
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
  // FAILED_PRECONDITION if no libmagic handle could be opened.
  absl::StatusOr<FileType> Classify(absl::string_view bytes,
                                    absl::string_view declared_content_type) const;

 private:
  class Lease;

  FileTypeClassifier() = default;
  // An idle handle, or a new one.
  absl::StatusOr<magic_set*> Borrow() const;
  void Return(magic_set* handle) const;

  mutable absl::Mutex mu_;
  mutable std::vector<magic_set*> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchboard::filetype
