#!/usr/bin/env bash
# Runs README.md's "Try it with grpcurl" examples with the real grpcurl
# against the platform started by tools/run.sh (prebuilt binaries, ports
# held for it), then checks that reflection lists every service and that every
# method can be described and called with the token header (any answer but
# UNIMPLEMENTED, UNAUTHENTICATED, INTERNAL or UNKNOWN). Needs grpcurl in
# /usr/local/bin (tools/setup.sh installs it).
set -euo pipefail
root="${TEST_SRCDIR:?run with bazel test}/${TEST_WORKSPACE:-switchboard}"
cd "$root"
GRPCURL=/usr/local/bin/grpcurl
[[ -x "$GRPCURL" ]] || GRPCURL=$(command -v grpcurl) ||
  { echo "FAIL: grpcurl not installed; run tools/setup.sh" >&2; exit 1; }
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/grpcurl.XXXXXX")
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# run.sh's twelve ports (gRPC base+1..6, metrics base+2001..6), held by a
# coprocess for as long as this script runs, so that nothing else can take
# them before the servers bind them.
coproc PORTS { "$root/libs/testing/hold_ports" 1 2 3 4 5 6 2001 2002 2003 2004 2005 2006; }
read -r base <&"${PORTS[0]}" || { echo "FAIL: no free port range" >&2; exit 1; }

SWITCHBOARD_BIN_DIR="$root" SWITCHBOARD_PORT_BASE=$base SWITCHBOARD_DATA_DIR="$work/data" \
  SWITCHBOARD_DRAIN_DEADLINE=3s bash tools/run.sh >"$work/run.log" 2>&1 &
launcher=$!
stop_launcher() {
  kill -TERM "$launcher" 2>/dev/null || return 0
  local code=0
  wait "$launcher" || code=$?
  ((code == 0)) || { echo "FAIL: tools/run.sh exited $code" >&2; tail -12 "$work/run.log" >&2; }
  return "$code"
}
trap 'kill -TERM $launcher $PORTS_PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  grep -qs 'Ctrl-C stops everything' "$work/run.log" && break
  kill -0 "$launcher" 2>/dev/null || break
  sleep 0.1
done
grep -q 'Ctrl-C stops everything' "$work/run.log" ||
  { echo "FAIL: the platform did not start" >&2; cat "$work/run.log" >&2; exit 1; }

# The README's block, pointed at this run: its ports, binaries and key.
awk '/^### Try it with grpcurl/ {on = 1} on && /^```sh/ {code = 1; next}
     code && /^```/ {exit} code {print}' README.md >"$work/readme.sh"
[[ -s "$work/readme.sh" ]] || { echo "FAIL: no grpcurl block in README.md" >&2; exit 1; }
sed -E -i -e "s#bazel-bin/tools/mint_token/mint_token#$root/tools/mint_token/mint_token#g" \
  -e "s#--keys_dir=data/keys#--keys_dir=$work/data/keys#g" "$work/readme.sh"
for i in 1 2 3 4 5 6; do
  sed -i "s#localhost:710$i\\b#localhost:$((base + i))#g" "$work/readme.sh"
done

# Each grpcurl call of the block: its output in $work/call.N (and on stdout,
# for examples that read it), its status in $work/call.N.rc. The count is
# kept in a file: calls inside $(...) or a pipeline run in a subshell. A
# server stream (WatchOffers) is cut after 5 s.
echo 0 >"$work/calls"
grpcurl() {
  local n code=0
  n=$(($(cat "$work/calls") + 1))
  echo "$n" >"$work/calls"
  "$GRPCURL" -max-time 5 "$@" >"$work/call.$n" 2>&1 || code=$?
  echo "$code" >"$work/call.$n.rc"
  cat "$work/call.$n"
}
# shellcheck disable=SC1091
source "$work/readme.sh" >/dev/null
calls=$(cat "$work/calls")
outputs=()
for n in $(seq "$calls"); do outputs+=("$work/call.$n"); done
echo "README: $calls grpcurl examples"
((calls >= 4)) || fail "README has $calls grpcurl calls, expected at least 4"
for n in $(seq "$calls"); do
  rc=$(cat "$work/call.$n.rc")
  if [[ $rc != 0 ]] && ! grep -q 'Code: DeadlineExceeded' "$work/call.$n"; then
    fail "README example $n failed ($rc): $(cat "$work/call.$n")"
  fi
  [[ -s "$work/call.$n" ]] || fail "README example $n printed nothing"
done
# grpcurl prints proto field names (v1.8) or JSON names (later versions).
grep -qE '"(session_id|sessionId)"' "${outputs[@]}" || fail "no example created a session"
grep -q 'ATTACHMENT_STATE_PENDING_SCAN' "${outputs[@]}" || fail "no example uploaded a file"
offer=$(grep -hoE '"(offer_id|offerId)": "[^"]*"' "${outputs[@]}" | head -1 | cut -d'"' -f4 || true)
if [[ -z "$offer" ]]; then
  fail "WatchOffers showed no offer"
else
  # "then AcceptOffer with its offer_id"
  "$GRPCURL" -plaintext -H "authorization: Bearer $(mint agent-1 agent)" \
    -d "{\"offer_id\":\"$offer\"}" "localhost:$((base + 2))" \
    switchboard.routing.v1.RoutingService/AcceptOffer >"$work/accept" 2>&1 ||
    fail "AcceptOffer: $(cat "$work/accept")"
fi

# Reflection: every service, every method described and callable.
token=$(mint ops-1 supervisor)
methods=0
index=0
for name in sessions routing bot presence identity feedback; do
  index=$((index + 1))
  address="localhost:$((base + index))"
  listed=$("$GRPCURL" -plaintext "$address" list) || { fail "$name: list failed"; continue; }
  for expected in grpc.health.v1.Health grpc.reflection.v1alpha.ServerReflection; do
    grep -qx "$expected" <<<"$listed" || fail "$name: list lacks $expected"
  done
  services=$(grep '^switchboard\.' <<<"$listed" || true)
  [[ -n "$services" ]] || fail "$name: list shows no switchboard service"
  for service in $services; do
    for method in $("$GRPCURL" -plaintext "$address" list "$service"); do
      methods=$((methods + 1))
      "$GRPCURL" -plaintext "$address" describe "$method" | grep -q "rpc ${method##*.}" ||
        fail "cannot describe $method"
      out=$("$GRPCURL" -plaintext -max-time 2 -H "authorization: Bearer $token" -d '{}' \
        "$address" "$method" 2>&1) || true
      if grep -qE 'Code: (Unimplemented|Unauthenticated|Internal|Unknown)' <<<"$out"; then
        fail "$method: $(grep -A1 'Code:' <<<"$out" | tr '\n' ' ')"
      fi
    done
  done
  echo "$name: $(wc -w <<<"$services") service(s) listed"
done
echo "methods described and called: $methods"
((methods >= 30)) || fail "only $methods methods found by reflection"

trap - EXIT
stop_launcher || failures=$((failures + 1))
if ((failures)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "grpcurl checks passed"
