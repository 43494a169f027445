#include "tools/cli/attachment_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/blob/blob_store.h"

namespace switchboard::cli {
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// "cli-" and the first 40 hex digits of the SHA-256 of `parts`, each
// ended by '\n' so that no two lists of parts give the same text.
std::string DerivedId(std::initializer_list<absl::string_view> parts) {
  std::string text;
  for (absl::string_view part : parts) absl::StrAppend(&text, part, "\n");
  return absl::StrCat("cli-", blob::ContentAddress(text).substr(0, 40));
}

absl::Status Exists(const std::string& path) {
  return absl::AlreadyExistsError(
      absl::StrCat(path, " exists; pass --force to overwrite it, or --out=PATH"));
}

}  // namespace

absl::StatusOr<std::string> GuessContentType(absl::string_view path) {
  const std::string name = BaseName(path);
  const size_t dot = name.rfind('.');
  const std::string extension =
      dot == std::string::npos ? "" : absl::AsciiStrToLower(name.substr(dot + 1));
  static constexpr std::pair<const char*, const char*> kTypes[] = {
      {"png", "image/png"},        {"jpg", "image/jpeg"},       {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},        {"webp", "image/webp"},      {"heic", "image/heic"},
      {"mp4", "video/mp4"},        {"mov", "video/quicktime"},  {"pdf", "application/pdf"},
      {"txt", "text/plain"},       {"log", "text/plain"}};
  for (const auto& [known, type] : kTypes) {
    if (extension == known) return std::string(type);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "cannot tell the type of \"", name,
      "\" from its extension; give it with --type (image/png, image/jpeg, image/gif, "
      "image/webp, image/heic, video/mp4, video/quicktime, application/pdf or text/plain)"));
}

std::string BaseName(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? path : path.substr(slash + 1));
}

std::string UploadId(absl::string_view session, absl::string_view sha256,
                     absl::string_view file_name, absl::string_view content_type) {
  return DerivedId({"upload", session, sha256, file_name, content_type});
}

std::string AttachmentMessageId(absl::string_view attachment_id, absl::string_view text) {
  return DerivedId({"message", attachment_id, text});
}

absl::Status CheckLocalName(absl::string_view name) {
  bool safe = !name.empty() && name != "." && name != "..";
  for (char c : name) {
    if (c == '/' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) safe = false;
  }
  if (safe) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("the attachment's name \"", absl::CEscape(name),
                   "\" is not a plain file name; choose one with --out=PATH"));
}

absl::StatusOr<std::string> ReadLocalFile(const std::string& path) {
  const auto unreadable = [&path] {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": ",
                                                   std::strerror(errno)));
  };
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unreadable();
  std::string bytes;
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {  // EISDIR for a folder
      absl::Status status = unreadable();
      close(fd);
      return status;
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return bytes;
}

absl::Status CheckNotThere(const std::string& path, bool overwrite) {
  if (!overwrite && access(path.c_str(), F_OK) == 0) return Exists(path);
  return absl::OkStatus();
}

absl::Status WriteLocalFile(const std::string& path, absl::string_view bytes, bool overwrite) {
  static thread_local std::mt19937_64 random(std::random_device{}());
  const std::string partial = absl::StrFormat("%s.partial-%012x", path, random() >> 16);
  const int fd = open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) return ErrnoError("cannot create", partial);
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status status = ErrnoError("cannot write", partial);
      close(fd);
      unlink(partial.c_str());
      return status;
    }
    written += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    absl::Status status = ErrnoError("cannot write", partial);
    unlink(partial.c_str());
    return status;
  }
  // link() fails if `path` exists, so nothing appearing meanwhile is lost;
  // rename() replaces it in one step.
  if (overwrite ? rename(partial.c_str(), path.c_str()) != 0
                : link(partial.c_str(), path.c_str()) != 0) {
    const bool exists = errno == EEXIST;
    absl::Status status = ErrnoError("cannot create", path);
    unlink(partial.c_str());
    return exists ? Exists(path) : status;
  }
  if (!overwrite) unlink(partial.c_str());
  return absl::OkStatus();
}

}  // namespace switchboard::cli
