#include "libs/auth/key_set_file.h"

#include <sys/stat.h>

#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/auth/key_file.h"
#include "libs/log/log.h"

namespace switchboard::auth {
namespace {

// What tells one version of a file from another without reading it.
struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  int64_t modified_seconds = 0;
  int64_t modified_nanos = 0;
  bool operator==(const FileIdentity& o) const {
    return std::tie(device, inode, size, modified_seconds, modified_nanos) ==
           std::tie(o.device, o.inode, o.size, o.modified_seconds, o.modified_nanos);
  }
};

bool Identify(const std::string& path, FileIdentity* identity) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  *identity = {st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
  return true;
}

absl::StatusOr<KeySet> ReadKeySet(const std::string& path) {
  absl::StatusOr<std::string> text = ReadKeyFile(path, kMaxKeySetFileBytes);
  if (!text.ok()) return text.status();
  absl::StatusOr<KeySet> keys = KeySet::FromJson(*text);
  if (!keys.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", keys.status().message()));
  }
  return keys;
}

class KeySetFile final : public KeySource {
 public:
  KeySetFile(std::string path, absl::Duration check_interval, Clock* clock, KeySet keys,
             FileIdentity identity)
      : path_(std::move(path)),
        check_interval_(check_interval),
        clock_(clock),
        keys_(std::make_shared<const KeySet>(std::move(keys))),
        identity_(identity),
        next_check_(clock->Now() + check_interval) {}

  std::shared_ptr<const KeySet> Keys() const override {
    const absl::Time now = clock_->Now();
    absl::MutexLock lock(&mu_);
    if (now < next_check_) return keys_;
    next_check_ = now + check_interval_;
    FileIdentity identity;
    if (!Identify(path_, &identity)) {
      if (!missing_reported_) {
        log::Warning("key_set_unreadable",
                     {{"path", path_}, {"note", "the keys read before stay in use"}});
        missing_reported_ = true;
      }
      return keys_;
    }
    missing_reported_ = false;
    if (identity == identity_) return keys_;
    identity_ = identity;
    absl::StatusOr<KeySet> keys = ReadKeySet(path_);
    if (!keys.ok()) {
      log::Warning("key_set_reload_failed",
                   {{"path", path_},
                    {"error", std::string(keys.status().message())},
                    {"note", "the keys read before stay in use"}});
      return keys_;
    }
    keys_ = std::make_shared<const KeySet>(*std::move(keys));
    log::Info("key_set_reloaded",
              {{"path", path_}, {"keys", absl::StrCat(keys_->keys().size())}});
    return keys_;
  }

 private:
  const std::string path_;
  const absl::Duration check_interval_;
  Clock* const clock_;
  mutable absl::Mutex mu_;
  mutable std::shared_ptr<const KeySet> keys_ ABSL_GUARDED_BY(mu_);
  mutable FileIdentity identity_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time next_check_ ABSL_GUARDED_BY(mu_);
  mutable bool missing_reported_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::StatusOr<std::shared_ptr<const KeySource>> WatchKeySetFile(const std::string& path,
                                                                absl::Duration check_interval,
                                                                Clock* clock) {
  FileIdentity identity;
  // Identified before reading: a change while reading is seen at the next
  // check rather than missed.
  if (!Identify(path, &identity)) {
    return absl::NotFoundError(absl::StrCat("cannot open key set file ", path));
  }
  absl::StatusOr<KeySet> keys = ReadKeySet(path);
  if (!keys.ok()) return keys.status();
  return std::shared_ptr<const KeySource>(
      std::make_shared<KeySetFile>(path, check_interval, clock, *std::move(keys), identity));
}

}  // namespace switchboard::auth
