#!/usr/bin/env bash
# Checks the SRE files with the real tools: Prometheus's configuration and
# alert rules pass promtool; the Grafana dashboard is JSON with the panels
# SREs expect and every query in it is PromQL promtool accepts; every metric
# the dashboard and the alerts name is defined in deploy/METRICS.md.
# Needs promtool and jq (tools/setup.sh installs them).
set -euo pipefail
cd "${TEST_SRCDIR:-$(dirname "$0")/../..}/${TEST_WORKSPACE:-switchboard}"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

for tool in promtool jq; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not installed; run tools/setup.sh" >&2; exit 1; }
done
tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/deploy_check.XXXXXX")

promtool check config deploy/prometheus/prometheus.yml || fail "prometheus.yml"
promtool check rules deploy/prometheus/alerts.yml || fail "alerts.yml"
promtool test rules deploy/prometheus/alerts_test.yml || fail "alerts_test.yml: an alert fires (or not) unlike its test"
grep -q 'alerts.yml' deploy/prometheus/prometheus.yml || fail "prometheus.yml does not load alerts.yml"

dashboard=deploy/grafana/switchboard.json
jq -e '.panels | length > 0' "$dashboard" >/dev/null || fail "$dashboard: not JSON with panels"
for title in "First human response" "Queue wait" "Time to resolution" "Bot containment" \
             "Agents by status" "Queue depth"; do
  jq -e --arg t "$title" '[.panels[].title | startswith($t)] | any' "$dashboard" >/dev/null ||
    fail "$dashboard: no panel '$title'"
done

# Each dashboard query as a recording rule, so promtool parses it; Grafana's
# $__rate_interval becomes a plain range.
jq -r '.panels[].targets[].expr' "$dashboard" >"$tmp/exprs"
[[ -s "$tmp/exprs" ]] || fail "$dashboard: no queries"
{
  echo "groups:"
  echo "  - name: dashboard"
  echo "    rules:"
  n=0
  while IFS= read -r expr; do
    n=$((n + 1))
    echo "      - record: dashboard:query_$n"
    echo "        expr: $(jq -Rn --arg e "${expr//\$__rate_interval/5m}" '$e')"
  done <"$tmp/exprs"
} >"$tmp/dashboard_rules.yml"
promtool check rules "$tmp/dashboard_rules.yml" || fail "$dashboard: a query is not valid PromQL"
echo "dashboard: $(wc -l <"$tmp/exprs") queries in $(jq '.panels | length' "$dashboard") panels"

# Every metric named is documented, with its definition, in METRICS.md.
names=$( { cat "$tmp/exprs"; grep 'expr' -A6 deploy/prometheus/alerts.yml; } |
  grep -oE '\b(switchboard|grpc_server)_[a-z_]+' | sed -E 's/_(bucket|count|sum)$//' | sort -u)
for name in $names up; do
  grep -q "^| \`$name\` |" deploy/METRICS.md || fail "METRICS.md does not define $name"
done
echo "metrics documented: $(wc -w <<<"$names up")"

rm -rf "$tmp"
if ((failures)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "deploy checks passed"
