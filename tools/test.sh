#!/usr/bin/env bash
# Sets up the machine (tools/setup.sh), runs the tests with Bazel, then
# prints one summary line: "N passed, M failed". Exit status 0 only if every
# test passed.
#
#   bash tools/test.sh                 # what CI runs (.ci/run): every test
#                                      # once. The suites that run the shipped
#                                      # binaries (tests/, tools/, deploy/) as
#                                      # built by default (gcc); the unit and
#                                      # service tests (libs/, services/) under
#                                      # ASan + UBSan (clang-14, --config=asan,
#                                      # which also checks ABSL_GUARDED_BY with
#                                      # -Wthread-safety -Werror); then every
#                                      # fuzz target for 30 s (tools/fuzz.sh)
#   bash tools/test.sh --config=asan   # every test, once, with these Bazel
#   bash tools/test.sh --config=tsan   # flags (tsan first builds an
#                                      # instrumented Abseil: setup.sh --tsan)
set -uo pipefail
cd "$(dirname "$0")/.."

setup_flags=()
for arg in "$@"; do
  if [[ "$arg" == --config=tsan ]]; then setup_flags+=(--tsan); fi
done
bash tools/setup.sh "${setup_flags[@]}" || exit 1

passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Runs `bazel test` with the given arguments and adds its test cases to the
# counts. Test cases are counted from each target's JUnit XML (gtest writes
# one per run); a target that failed without a report (build error, crash)
# counts as one failed test.
run_tests() {
  bazel test --nocache_test_results "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  local before=$failed
  local target result xml header tests failures errors bad
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
  if ((status != 0 && failed == before)); then
    # The build failed before any test ran.
    failed=$((failed + 1))
  fi
}

if (($# > 0)); then
  run_tests //... "$@"
else
  # Each test once, which keeps CI within its time on 2 cores: the process
  # suites (every service as a process, a Kafka broker, PostgreSQL,
  # Prometheus), the tools and the deployment as shipped; the unit and
  # service tests where the sanitizers look.
  shipped=(//tests/... //tools/... //deploy/...)
  run_tests "${shipped[@]}"
  run_tests --config=asan -- //... "${shipped[@]/#/-}"
  bash tools/fuzz.sh --seconds=30 --seed=1 2>&1 | tee "$log"
  fuzz_passed=$(sed -nE 's/^fuzz: ([0-9]+) passed, ([0-9]+) failed$/\1/p' "$log")
  fuzz_failed=$(sed -nE 's/^fuzz: ([0-9]+) passed, ([0-9]+) failed$/\2/p' "$log")
  passed=$((passed + ${fuzz_passed:-0}))
  failed=$((failed + ${fuzz_failed:-1}))
fi

# Leave no Bazel server behind (CI clones into a fresh folder every time).
bazel shutdown >/dev/null 2>&1
echo "${passed} passed, ${failed} failed"
exit $((failed != 0))
