#!/usr/bin/env bash
# The benchmark suite's smoke run (suite.sh --smoke: about 20 s, tiny counts)
# so that the instrument cannot rot: every scenario must run against real
# servers, produce a result without errors, and land in the report. The
# figures themselves are not checked (they mean nothing at these counts).
set -euo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
out="${TEST_TMPDIR}/out"
export TMPDIR="${TEST_TMPDIR}"
bash "$root/tools/loadgen/suite.sh" --bin="$root" --out="$out" --smoke
if [[ -n "${TEST_UNDECLARED_OUTPUTS_DIR:-}" ]]; then
  cp "$out/REPORT.md" "$out/report.json" "$TEST_UNDECLARED_OUTPUTS_DIR/"
fi

fail() { echo "smoke_test: $*" >&2; cat "$out/REPORT.md" >&2; exit 1; }
report="$out/report.json"
for run in echo_bare echo_bootstrap send_message fanout idle_200 idle_1000; do
  jq -e --arg r "$run" '.runs[$r].ok > 0' "$report" >/dev/null || fail "$run: no successful call"
  jq -e --arg r "$run" '.runs[$r].failed == 0 and .runs[$r].not_drained == 0' "$report" >/dev/null ||
    fail "$run: calls failed: $(jq -c --arg r "$run" '.runs[$r].errors' "$report")"
  jq -e --arg r "$run" '.runs[$r].latency.p99_us > 0 and .runs[$r].server.cpu_seconds >= 0' \
    "$report" >/dev/null || fail "$run: no latency or server CPU time"
done
jq -e '.runs.fanout.fanout.all_caught_up and .runs.fanout.fanout.delivery.count > 0' \
  "$report" >/dev/null || fail "fanout: subscribers saw no message"
jq -e '[.runs.idle_200, .runs.idle_1000][] | .hold.all_caught_up and .hold.rss_kib_held > 0' \
  "$report" >/dev/null || fail "idle streams did not all catch up"
jq -e '.runs.routing.decisions > 0 and .runs.routing.enqueue_to_offer.count > 0' "$report" >/dev/null ||
  fail "routing: no decision or no enqueue-to-offer latency"
grep -q '^| 4 | 1000 idle StreamSessionEvents' "$out/REPORT.md" || fail "report lacks the idle rows"
echo "smoke_test: every scenario ran; report:"
cat "$out/REPORT.md"
