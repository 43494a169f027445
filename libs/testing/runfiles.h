#pragma once

namespace switchboard::testing {

// The fixtures here (ServerProcess, KafkaBroker, test certificates) find
// their files under $TEST_SRCDIR, which `bazel test` sets and `bazel run`
// does not. A benchmark started by `bazel run` or by hand calls this first
// with its argv[0]: it points TEST_SRCDIR at the binary's runfiles, and
// leaves a TEST_SRCDIR that is already set alone.
void UseRunfilesOf(const char* argv0);

}  // namespace switchboard::testing
