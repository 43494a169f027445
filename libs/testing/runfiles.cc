#include "libs/testing/runfiles.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace switchboard::testing {

void UseRunfilesOf(const char* argv0) {
  if (std::getenv("TEST_SRCDIR") != nullptr) return;
  std::string runfiles;
  if (const char* dir = std::getenv("RUNFILES_DIR")) {
    runfiles = dir;
  } else if (access(absl::StrCat(argv0, ".runfiles/switchboard").c_str(), F_OK) == 0) {
    runfiles = absl::StrCat(argv0, ".runfiles");
  } else {
    runfiles = "..";  // `bazel run` starts us in <runfiles>/switchboard.
  }
  setenv("TEST_SRCDIR", runfiles.c_str(), 1);
}

}  // namespace switchboard::testing
