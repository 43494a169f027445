#!/usr/bin/env bash
# The benchmark suite's smoke run (suite.sh --smoke --postgres: about 50 s,
# tiny counts) so that the instrument cannot rot: every scenario must run
# against real servers, produce a result without errors, and land in the
# report. The figures themselves are not checked (they mean nothing at these
# counts).
set -euo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
out="${TEST_TMPDIR}/out"
export TMPDIR="${TEST_TMPDIR}"
bash "$root/tools/loadgen/suite.sh" --bin="$root" --out="$out" --smoke --postgres
if [[ -n "${TEST_UNDECLARED_OUTPUTS_DIR:-}" ]]; then
  cp "$out/REPORT.md" "$out/report.json" "$TEST_UNDECLARED_OUTPUTS_DIR/"
  if [[ -d "$out/report" ]]; then cp -r "$out/report" "$TEST_UNDECLARED_OUTPUTS_DIR/"; fi
  cp -r "$out/logs" "$TEST_UNDECLARED_OUTPUTS_DIR/"
fi

fail() { echo "smoke_test: $*" >&2; cat "$out/REPORT.md" >&2; exit 1; }
report="$out/report.json"
for run in echo_bare echo_bootstrap send_message fanout send_message_postgres \
  send_message_postgres_replicas fanout_postgres fanout_postgres_standby idle_200 idle_1000; do
  jq -e --arg r "$run" '.runs[$r].ok > 0' "$report" >/dev/null || fail "$run: no successful call"
  jq -e --arg r "$run" '.runs[$r].failed == 0 and .runs[$r].not_drained == 0' "$report" >/dev/null ||
    fail "$run: calls failed: $(jq -c --arg r "$run" '.runs[$r].errors' "$report")"
  jq -e --arg r "$run" '.runs[$r].latency.p99_us > 0 and .runs[$r].server.cpu_seconds >= 0' \
    "$report" >/dev/null || fail "$run: no latency or server CPU time"
done
for run in fanout fanout_postgres fanout_postgres_standby; do
  jq -e --arg r "$run" '.runs[$r].fanout | .all_caught_up and .delivery.count > 0' \
    "$report" >/dev/null || fail "$run: subscribers saw no message"
done
jq -e '.runs.send_message_postgres_replicas.server.processes == 2' "$report" >/dev/null ||
  fail "send_message_postgres_replicas: not both processes measured"
# The streams of the cross-process run were on the standby, not the leader.
jq -e '.runs.fanout_postgres_standby | .fanout.stream_target != .target
  and .fanout.stream_server.cpu_seconds >= 0' "$report" >/dev/null ||
  fail "fanout_postgres_standby: the streams were not on another process"
grep -q '^| 3 | the fan-out with sessions on PostgreSQL 15.*hot standby' "$out/REPORT.md" ||
  fail "report lacks the fan-out row across processes"
jq -e '[.runs.idle_200, .runs.idle_1000][] | .hold.all_caught_up and .hold.rss_kib_held > 0' \
  "$report" >/dev/null || fail "idle streams did not all catch up"
jq -e '.runs.routing.decisions > 0 and .runs.routing.enqueue_to_offer.count > 0' "$report" >/dev/null ||
  fail "routing: no decision or no enqueue-to-offer latency"
grep -q '^| 4 | 1000 idle StreamSessionEvents' "$out/REPORT.md" || fail "report lacks the idle rows"
# The support floor: every flow ran (bot answers, escalations, offers
# accepted, both directions of a human conversation, resolutions), without
# an error, and every server process was measured.
jq -e '.runs.floor.errors == {} and .runs.floor.ramp_errors == {}' "$report" >/dev/null ||
  fail "floor: errors $(jq -c '[.runs.floor.errors, .runs.floor.ramp_errors]' "$report")"
jq -e '.runs.floor | .to_agent.count > 0 and .to_customer.count > 0 and .bot_turn.count > 0' \
  "$report" >/dev/null || fail "floor: a direction of the conversation was never delivered"
jq -e '.runs.floor.counts | .accepted > 0 and .resolved_by_agent > 0 and .resolved_by_bot > 0
  and .rated > 0 and .conversations_started > 0' "$report" >/dev/null ||
  fail "floor: a flow did not happen: $(jq -c .runs.floor.counts "$report")"
jq -e '[.runs.floor.servers[]] | length == 5 and all(.cpu_seconds >= 0 and .rss_kib > 0)' \
  "$report" >/dev/null || fail "floor: server processes not measured"
jq -e '.runs.floor.delivery.buckets_us | length > 0' "$report" >/dev/null ||
  fail "floor: no histogram buckets for the pictures"
grep -q '^| 8 | a support floor' "$out/REPORT.md" || fail "report lacks the floor row"
# The pictures, or the report's word that they could not be drawn.
if command -v gnuplot >/dev/null; then
  for picture in floor fanout send_message; do
    grep -q "<svg" "$out/report/$picture.svg" || fail "no picture $picture.svg"
    grep -q "(report/$picture.svg)" "$out/REPORT.md" || fail "REPORT.md does not show $picture.svg"
  done
else
  grep -q "Not drawn: gnuplot is not installed" "$out/REPORT.md" || fail "no word on missing pictures"
fi
echo "smoke_test: every scenario ran; report:"
cat "$out/REPORT.md"
