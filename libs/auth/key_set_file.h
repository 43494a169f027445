#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/auth/verifier.h"
#include "libs/clock/clock.h"

namespace switchboard::auth {

// Largest key set file read, in bytes.
inline constexpr size_t kMaxKeySetFileBytes = 64 * 1024;

// A key source read from a JWKS file (KeySet::FromJson) and re-read when the
// file changes, so keys rotate without a restart: add the new key to the
// file, later remove the old one.
//
// Loads `path` now: NotFound if it is missing, InvalidArgument (naming the
// path and the key at fault) if it is not a usable key set. Afterwards,
// Keys() looks at the file's identity (device, inode, size, modification
// time) at most once per `check_interval` (by `clock`), on the calling
// thread, and re-reads it when that changed. A file that is missing or does
// not parse then (e.g. caught half-written) leaves the previous keys in use
// and logs a warning; it is read again once it changes again. `clock` must
// outlive the source.
absl::StatusOr<std::shared_ptr<const KeySource>> WatchKeySetFile(const std::string& path,
                                                                absl::Duration check_interval,
                                                                Clock* clock = RealClock());

}  // namespace switchboard::auth
