#!/usr/bin/env bash
# history_benchmark --smoke: seeds a small history, runs every phase against
# the real server and prints one JSON line with every figure.
set -euo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
out="$("$root/tools/loadgen/history_benchmark" --smoke 2>"${TEST_TMPDIR}/stderr.log")" || {
  cat "${TEST_TMPDIR}/stderr.log" >&2
  exit 1
}
echo "$out"
[[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]] || { echo "expected one line" >&2; exit 1; }
for key in start_seconds rss_kib get_session_p99_ms send_message_p99_ms \
           empty_get_session_p99_ms empty_send_message_p99_ms \
           get_session_p99_ms_under_list_flood get_closed_session_p99_ms; do
  jq -e --arg k "$key" '.[$k] > 0' <<<"$out" >/dev/null || {
    echo "history_benchmark: $key missing or not positive" >&2
    exit 1
  }
done
jq -e '.closed_sessions == 3000 and .messages == 15000 and .list_sessions_calls > 0' \
  <<<"$out" >/dev/null || { echo "unexpected sizes" >&2; exit 1; }
