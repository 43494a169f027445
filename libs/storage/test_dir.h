#pragma once

// Temporary folders for tests and benchmarks.

#include <string>

namespace switchboard::storage {

// Creates a new, empty folder under $TEST_TMPDIR (set by `bazel test`) or
// else $TMPDIR or /tmp, and returns its path. Aborts the process if it cannot,
// since no test can run without one. Thread-safe. The caller removes it if
// it must (bazel test removes TEST_TMPDIR itself).
std::string MakeTempDir();

}  // namespace switchboard::storage
