#include "libs/auth/key_file.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace switchboard::auth {
namespace {

// A hex key file holds 64 digits and a newline; anything much bigger is not
// a key file.
constexpr size_t kMaxHexKeyFileBytes = 4096;

absl::Status FileError(int error_number, absl::string_view what, const std::string& path) {
  return absl::ErrnoToStatus(error_number, absl::StrCat(what, " ", path));
}

absl::StatusOr<std::string> DecodeKey(absl::string_view text, const std::string& path) {
  absl::string_view hex = absl::StripAsciiWhitespace(text);
  if (hex.size() % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("key file ", path, " does not hold hex text (odd number of digits)"));
  }
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(absl::StrCat("key file ", path, " does not hold hex text"));
    }
  }
  if (hex.size() / 2 < kMinKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("key in ", path, " is ", hex.size() / 2,
                                                   " bytes; at least ", kMinKeyBytes,
                                                   " are needed"));
  }
  return absl::HexStringToBytes(hex);
}

absl::Status WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadKeyFile(const std::string& path, size_t max_bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, "cannot open key file", path);
  std::string contents;
  char buf[1024];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int error_number = errno;
      close(fd);
      return FileError(error_number, "cannot read key file", path);
    }
    if (n == 0) break;
    contents.append(buf, static_cast<size_t>(n));
    if (contents.size() > max_bytes) {
      close(fd);
      OPENSSL_cleanse(buf, sizeof(buf));
      return absl::InvalidArgumentError(
          absl::StrCat("key file ", path, " is larger than ", max_bytes, " bytes"));
    }
  }
  close(fd);
  OPENSSL_cleanse(buf, sizeof(buf));
  return contents;
}

absl::Status CreateKeyFile(const std::string& path, absl::string_view contents) {
  std::string temp = absl::StrCat(path, ".tmp.XXXXXX");
  int fd = mkstemp(temp.data());  // mode 0600
  if (fd < 0) return FileError(errno, "cannot create key file", path);
  absl::Status status = WriteAll(fd, contents);
  if (status.ok() && fchmod(fd, S_IRUSR | S_IWUSR) != 0) {
    status = absl::ErrnoToStatus(errno, "fchmod");
  }
  if (status.ok() && fsync(fd) != 0) {
    status = absl::ErrnoToStatus(errno, "fsync");
  }
  if (close(fd) != 0 && status.ok()) {
    status = absl::ErrnoToStatus(errno, "close");
  }
  if (status.ok() && link(temp.c_str(), path.c_str()) != 0) {
    status = errno == EEXIST ? absl::AlreadyExistsError(path) : absl::ErrnoToStatus(errno, "link");
  }
  unlink(temp.c_str());
  if (!status.ok() && !absl::IsAlreadyExists(status)) {
    return absl::Status(status.code(),
                        absl::StrCat("cannot create key file ", path, ": ", status.message()));
  }
  return status;
}

absl::StatusOr<std::string> LoadOrCreateKey(const std::string& path, bool create_if_missing) {
  absl::StatusOr<std::string> text = ReadKeyFile(path, kMaxHexKeyFileBytes);
  if (text.ok()) return DecodeKey(*text, path);
  if (!absl::IsNotFound(text.status()) || !create_if_missing) return text.status();

  unsigned char bytes[kMinKeyBytes];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError(
        absl::StrCat("cannot generate a key for ", path, ": RAND_bytes failed"));
  }
  std::string key(reinterpret_cast<const char*>(bytes), sizeof(bytes));
  OPENSSL_cleanse(bytes, sizeof(bytes));
  absl::Status created = CreateKeyFile(path, absl::StrCat(absl::BytesToHexString(key), "\n"));
  if (created.ok()) return key;
  if (absl::IsAlreadyExists(created)) {
    // Another process created it first; everyone must share its key.
    text = ReadKeyFile(path, kMaxHexKeyFileBytes);
    if (!text.ok()) return text.status();
    return DecodeKey(*text, path);
  }
  return created;
}

}  // namespace switchboard::auth
