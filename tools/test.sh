#!/usr/bin/env bash
# Sets up the machine (tools/setup.sh) and runs every test with Bazel, then
# prints one summary line: "N passed, M failed". Exit status 0 only if every
# test passed.
set -uo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh || exit 1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
bazel test //... --nocache_test_results "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# Count test cases from each target's JUnit XML (gtest writes one per run);
# a target that failed without a report (build error, crash) counts as one
# failed test.
passed=0
failed=0
while read -r target result; do
  xml="bazel-testlogs/${target#//}"
  xml="${xml/://}/test.xml"
  if [[ -f "$xml" ]]; then
    header=$(grep -m1 -o '<testsuites [^>]*>' "$xml" || true)
    tests=$(sed -n 's/.* tests="\([0-9]*\)".*/\1/p' <<<"$header")
    failures=$(sed -n 's/.* failures="\([0-9]*\)".*/\1/p' <<<"$header")
    errors=$(sed -n 's/.* errors="\([0-9]*\)".*/\1/p' <<<"$header")
    tests=${tests:-0} failures=${failures:-0} errors=${errors:-0}
    if [[ "$result" == PASSED ]]; then
      passed=$((passed + tests - failures - errors))
      failed=$((failed + failures + errors))
    else
      bad=$((failures + errors))
      ((bad == 0)) && bad=1
      passed=$((passed + tests - bad))
      failed=$((failed + bad))
    fi
  elif [[ "$result" == PASSED ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
done < <(sed -nE 's#^(//[^ ]+) +(\(cached\) )?(PASSED|FAILED|TIMEOUT|NO STATUS|FLAKY|INCOMPLETE).*#\1 \3#p' "$log" | sed 's/NO STATUS/NO_STATUS/')
if ((status != 0 && failed == 0)); then
  # The build failed before any test ran.
  failed=1
fi
# Leave no Bazel server behind (CI clones into a fresh folder every time).
bazel shutdown >/dev/null 2>&1
echo "${passed} passed, ${failed} failed"
exit $((status != 0))
