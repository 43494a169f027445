#include "libs/blob/file_blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"

namespace switchboard::blob {
namespace {

namespace fs = std::filesystem;

constexpr char kIncoming[] = ".incoming";

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path);
  const bool synced = fsync(fd) == 0;
  close(fd);
  if (!synced) return ErrnoError("cannot fsync", path);
  return absl::OkStatus();
}

absl::Status WriteDurably(const std::string& path, absl::string_view bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoError("cannot create", path);
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status status = ErrnoError("cannot write", path);
      close(fd);
      return status;
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    absl::Status status = ErrnoError("cannot fsync", path);
    close(fd);
    return status;
  }
  close(fd);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileBlobStore>> FileBlobStore::Open(const std::string& root) {
  std::error_code error;
  fs::create_directories(fs::path(root) / kIncoming, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create blob folder ", root, ": ", error.message()));
  }
  // Temporary files of Puts a crash interrupted: never renamed, never used.
  for (const auto& entry : fs::directory_iterator(fs::path(root) / kIncoming, error)) {
    fs::remove(entry.path(), error);
  }
  return std::unique_ptr<FileBlobStore>(new FileBlobStore(root));
}

std::string FileBlobStore::PathOf(absl::string_view key) const {
  return absl::StrCat(root_, "/", key.substr(0, 2), "/", key);
}

absl::StatusOr<std::string> FileBlobStore::Put(absl::string_view bytes) {
  std::string key = ContentAddress(bytes);
  const std::string path = PathOf(key);
  if (access(path.c_str(), F_OK) == 0) return key;
  const std::string dir = absl::StrCat(root_, "/", key.substr(0, 2));
  if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) return ErrnoError("cannot create", dir);
  // A name of its own per Put: two Puts of the same bytes at once each
  // write their own file, and either rename wins with the same content.
  const std::string temporary = absl::StrCat(root_, "/", kIncoming, "/", key, ".",
                                             absl::Uniform<uint64_t>(absl::BitGen()));
  if (absl::Status written = WriteDurably(temporary, bytes); !written.ok()) {
    unlink(temporary.c_str());
    return written;
  }
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    absl::Status status = ErrnoError("cannot rename into", path);
    unlink(temporary.c_str());
    return status;
  }
  if (absl::Status synced = FsyncPath(dir, O_RDONLY | O_DIRECTORY); !synced.ok()) return synced;
  return key;
}

absl::StatusOr<std::string> FileBlobStore::Get(absl::string_view key) {
  if (absl::Status s = CheckContentAddress(key); !s.ok()) return s;
  const std::string path = PathOf(key);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no blob ", key));
    return ErrnoError("cannot open", path);
  }
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) return ErrnoError("cannot read", path);
  return std::move(bytes).str();
}

absl::StatusOr<bool> FileBlobStore::Exists(absl::string_view key) {
  if (absl::Status s = CheckContentAddress(key); !s.ok()) return s;
  const std::string path = PathOf(key);
  if (access(path.c_str(), F_OK) == 0) return true;
  if (errno == ENOENT) return false;
  return ErrnoError("cannot look up", path);
}

absl::Status FileBlobStore::Delete(absl::string_view key) {
  if (absl::Status s = CheckContentAddress(key); !s.ok()) return s;
  const std::string path = PathOf(key);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("cannot delete", path);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> FileBlobStore::List(absl::string_view after,
                                                             int limit) {
  std::vector<std::string> keys;
  std::error_code error;
  std::vector<std::string> dirs;
  for (const auto& entry : fs::directory_iterator(root_, error)) {
    const std::string name = entry.path().filename().string();
    if (name.size() == 2 && name >= after.substr(0, 2)) dirs.push_back(name);
  }
  if (error) return absl::InternalError(absl::StrCat("cannot list ", root_, ": ", error.message()));
  std::sort(dirs.begin(), dirs.end());
  for (const std::string& dir : dirs) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(fs::path(root_) / dir, error)) {
      std::string name = entry.path().filename().string();
      if (IsContentAddress(name) && name > after) names.push_back(std::move(name));
    }
    if (error) {
      return absl::InternalError(absl::StrCat("cannot list ", root_, "/", dir, ": ",
                                              error.message()));
    }
    std::sort(names.begin(), names.end());
    for (std::string& name : names) {
      if (static_cast<int>(keys.size()) == limit) return keys;
      keys.push_back(std::move(name));
    }
  }
  return keys;
}

std::optional<std::string> FileBlobStore::SignedUrl(absl::string_view, absl::Duration) {
  return std::nullopt;
}

}  // namespace switchboard::blob
