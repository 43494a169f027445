#include "libs/auth/key_folder.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "libs/auth/key_file.h"
#include "libs/auth/policy.h"

namespace switchboard::auth {
namespace {

// A PEM P-256 key is about 240 bytes.
constexpr size_t kMaxPemBytes = 16 * 1024;

absl::Status WriteFile(const std::string& path, absl::string_view contents) {
  return CreateKeyFile(path, contents);
}

absl::Status WriteFolderContents(const KeyFolder& keys, const std::string& dir) {
  struct Public {
    const char* name;
    KeySet keys;
  };
  for (const Public& set : {Public{kAccessKeysFile, keys.AccessKeys()},
                            Public{kServiceKeysFile, keys.ServiceKeys()},
                            Public{kVerificationKeysFile, keys.VerificationKeys()}}) {
    if (absl::Status s = WriteFile(absl::StrCat(dir, "/", set.name), set.keys.ToJson());
        !s.ok()) {
      return s;
    }
    // Public: mode 0644, so tools run by other users can read them.
    chmod(absl::StrCat(dir, "/", set.name).c_str(), 0644);
  }
  if (absl::Status s = WriteFile(absl::StrCat(dir, "/", kIssuerKeyFile), keys.issuer.ToPem());
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          WriteFile(absl::StrCat(dir, "/", kVerificationKeyFile), keys.verification.ToPem());
      !s.ok()) {
    return s;
  }
  for (const auto& [service, key] : keys.services) {
    if (absl::Status s = WriteFile(absl::StrCat(dir, "/", ServiceKeyFile(service)), key.ToPem());
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string ServiceKeyFile(const std::string& service) { return service + ".pem"; }

absl::StatusOr<KeyFolder> KeyFolder::Generate() {
  absl::StatusOr<SigningKey> issuer = SigningKey::Generate();
  if (!issuer.ok()) return issuer.status();
  absl::StatusOr<SigningKey> verification = SigningKey::Generate();
  if (!verification.ok()) return verification.status();
  KeyFolder keys{*std::move(issuer), {}, *std::move(verification)};
  for (const std::string& service : ServiceNames()) {
    absl::StatusOr<SigningKey> key = SigningKey::Generate();
    if (!key.ok()) return key.status();
    keys.services.emplace(service, *std::move(key));
  }
  return keys;
}

KeySet KeyFolder::AccessKeys() const {
  KeySet set;
  set.Add(issuer.kid(), issuer.public_key()).IgnoreError();  // one key: no clash
  return set;
}

KeySet KeyFolder::ServiceKeys() const {
  KeySet set;
  for (const auto& [service, key] : services) {
    // Distinct keys have distinct thumbprints; service names are ours.
    set.Add(key.kid(), key.public_key(), service).IgnoreError();
  }
  return set;
}

KeySet KeyFolder::VerificationKeys() const {
  KeySet set;
  set.Add(verification.kid(), verification.public_key()).IgnoreError();
  return set;
}

absl::Status WriteKeyFolder(const KeyFolder& keys, const std::string& dir) {
  std::string temp = absl::StrCat(dir, ".tmp.XXXXXX");
  if (mkdtemp(temp.data()) == nullptr) {  // mode 0700
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create a key folder beside ", dir));
  }
  absl::Status status = WriteFolderContents(keys, temp);
  if (status.ok() && rename(temp.c_str(), dir.c_str()) != 0) {
    status = errno == EEXIST || errno == ENOTEMPTY
                 ? absl::AlreadyExistsError(dir)
                 : absl::ErrnoToStatus(errno, absl::StrCat("cannot create key folder ", dir));
  }
  if (!status.ok()) {
    std::error_code ignored;
    std::filesystem::remove_all(temp, ignored);
  }
  return status;
}

absl::StatusOr<SigningKey> ReadSigningKeyFile(const std::string& path) {
  absl::StatusOr<std::string> pem = ReadKeyFile(path, kMaxPemBytes);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<SigningKey> key = SigningKey::FromPem(*pem);
  if (!key.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", key.status().message()));
  }
  return key;
}

absl::StatusOr<KeyFolder> ReadKeyFolder(const std::string& dir) {
  absl::StatusOr<SigningKey> issuer = ReadSigningKeyFile(absl::StrCat(dir, "/", kIssuerKeyFile));
  if (!issuer.ok()) return issuer.status();
  absl::StatusOr<SigningKey> verification =
      ReadSigningKeyFile(absl::StrCat(dir, "/", kVerificationKeyFile));
  if (!verification.ok()) return verification.status();
  KeyFolder keys{*std::move(issuer), {}, *std::move(verification)};
  for (const std::string& service : ServiceNames()) {
    absl::StatusOr<SigningKey> key =
        ReadSigningKeyFile(absl::StrCat(dir, "/", ServiceKeyFile(service)));
    if (!key.ok()) return key.status();
    keys.services.emplace(service, *std::move(key));
  }
  return keys;
}

absl::StatusOr<bool> EnsureKeyFolder(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) return false;
  absl::StatusOr<KeyFolder> keys = KeyFolder::Generate();
  if (!keys.ok()) return keys.status();
  absl::Status written = WriteKeyFolder(*keys, dir);
  if (absl::IsAlreadyExists(written)) return false;  // another process made it first
  if (!written.ok()) return written;
  return true;
}

}  // namespace switchboard::auth
