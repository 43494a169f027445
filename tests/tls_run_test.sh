#!/usr/bin/env bash
# The whole platform over mTLS as `tools/run.sh --tls` starts it (prebuilt
# binaries, ports held for it), driven with the real grpcurl:
# - README.md's "Over TLS and mTLS" block runs as written (list, describe,
#   health, calls), and every gRPC port lists health and reflection;
# - a session escalated by the bot is offered and accepted, and a complaint
#   filed on it reaches routing: sessions->bot, sessions->routing,
#   routing->presence, routing->sessions, feedback->sessions and
#   feedback->routing all go over mTLS;
# - plaintext clients, clients without a certificate and clients trusting
#   another CA are refused; the CLI works with the TLS flags;
# - a server with TLS but no client certificates answers grpcurl -cacert;
# - the development certificates are made once, keys readable by their
#   owner only; every service logs "transport":"mtls" and exits 0.
# Needs grpcurl and openssl (tools/setup.sh installs them).
set -euo pipefail
root="${TEST_SRCDIR:?run with bazel test}/${TEST_WORKSPACE:-switchboard}"
cd "$root"
GRPCURL=/usr/local/bin/grpcurl
[[ -x "$GRPCURL" ]] || GRPCURL=$(command -v grpcurl) ||
  { echo "FAIL: grpcurl not installed; run tools/setup.sh" >&2; exit 1; }
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/tls.XXXXXX")
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# run.sh's twelve ports, held by a coprocess while this script runs.
coproc PORTS { "$root/libs/testing/hold_ports" 1 2 3 4 5 6 2001 2002 2003 2004 2005 2006; }
read -r base <&"${PORTS[0]}" || { echo "FAIL: no free port range" >&2; exit 1; }

SWITCHBOARD_BIN_DIR="$root" SWITCHBOARD_PORT_BASE=$base SWITCHBOARD_DATA_DIR="$work/data" \
  SWITCHBOARD_DRAIN_DEADLINE=3s bash tools/run.sh --tls >"$work/run.log" 2>&1 &
launcher=$!
trap 'kill -TERM $launcher $PORTS_PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  grep -qs 'Ctrl-C stops everything' "$work/run.log" && break
  kill -0 "$launcher" 2>/dev/null || break
  sleep 0.1
done
grep -q 'Ctrl-C stops everything' "$work/run.log" ||
  { echo "FAIL: the platform did not start" >&2; cat "$work/run.log" >&2; exit 1; }
tls_dir="$work/data/tls"
client=(-cacert "$tls_dir/ca.pem" -cert "$tls_dir/client.pem" -key "$tls_dir/client.key")
mint() { "$root/tools/mint_token/mint_token" --keys_dir="$work/data/keys" --subject="$1" --role="$2"; }

# The README's block, pointed at this run: its ports, binaries and files.
awk '/^### Over TLS and mTLS/ {on = 1} on && /^```sh/ {code = 1; next}
     code && /^```/ {exit} code {print}' README.md >"$work/readme.sh"
[[ -s "$work/readme.sh" ]] || { echo "FAIL: no TLS grpcurl block in README.md" >&2; exit 1; }
grep -q -- '-cacert' "$work/readme.sh" || fail "the README's TLS block does not use -cacert"
grep -v '^#' "$work/readme.sh" | grep -q -- '-plaintext' &&
  fail "the README's TLS block uses -plaintext"
sed -E -i -e "s#bazel-bin/tools/mint_token/mint_token#$root/tools/mint_token/mint_token#g" \
  -e "s#--keys_dir=data/keys#--keys_dir=$work/data/keys#g" \
  -e "s# data/tls/# $tls_dir/#g" "$work/readme.sh"
for i in 1 2 3 4 5 6; do
  sed -i "s#localhost:710$i\\b#localhost:$((base + i))#g" "$work/readme.sh"
done
calls=0
grpcurl() {
  calls=$((calls + 1))
  local code=0
  "$GRPCURL" -max-time 5 "$@" >"$work/call.$calls" 2>&1 || code=$?
  echo "$code" >"$work/call.$calls.rc"
}
# shellcheck disable=SC1091
source "$work/readme.sh"
unset -f grpcurl
echo "README: $calls grpcurl calls over mTLS"
((calls >= 6)) || fail "README's TLS block has $calls grpcurl calls, expected at least 6"
for n in $(seq "$calls"); do
  rc=$(cat "$work/call.$n.rc")
  if [[ $rc != 0 ]] && ! grep -q 'Code: DeadlineExceeded' "$work/call.$n"; then
    fail "README TLS example $n failed ($rc): $(cat "$work/call.$n")"
  fi
  [[ -s "$work/call.$n" ]] || fail "README TLS example $n printed nothing"
done
grep -qx 'switchboard.sessions.v1.SessionsService' "$work/call.1" ||
  fail "list over mTLS: $(cat "$work/call.1")"
grep -q 'rpc CreateSession' "$work/call.2" || fail "describe over mTLS: $(cat "$work/call.2")"
grep -q '"status": "SERVING"' "$work/call.3" || fail "health over mTLS: $(cat "$work/call.3")"
session=$(grep -hoE '"(session_id|sessionId)": "[^"]*"' "$work"/call.? | head -1 | cut -d'"' -f4 || true)
offer=$(grep -hoE '"(offer_id|offerId)": "[^"]*"' "$work"/call.? | head -1 | cut -d'"' -f4 || true)
[[ -n "$session" ]] || fail "no README example created a session"
[[ -n "$offer" ]] || fail "WatchOffers over mTLS showed no offer (sessions->bot->routing)"

# Every port: health and reflection over mTLS.
for i in 1 2 3 4 5 6; do
  listed=$("$GRPCURL" "${client[@]}" "localhost:$((base + i))" list 2>&1) ||
    fail "list on port $((base + i)): $listed"
  for expected in grpc.health.v1.Health grpc.reflection.v1alpha.ServerReflection; do
    grep -qx "$expected" <<<"$listed" || fail "port $((base + i)) does not list $expected"
  done
done

# Acceptance: routing asks sessions to assign; then a complaint: feedback
# asks sessions for the session and routing to queue it.
if [[ -n "$offer" && -n "$session" ]]; then
  "$GRPCURL" "${client[@]}" -H "authorization: Bearer $(mint agent-1 agent)" \
    -d "{\"offer_id\":\"$offer\"}" "localhost:$((base + 2))" \
    switchboard.routing.v1.RoutingService/AcceptOffer >"$work/accept" 2>&1 ||
    fail "AcceptOffer over mTLS: $(cat "$work/accept")"
  assigned=false
  for _ in $(seq 100); do
    "$GRPCURL" "${client[@]}" -H "authorization: Bearer $(mint cust-1 customer)" \
      -d "{\"session_id\":\"$session\"}" "localhost:$((base + 1))" \
      switchboard.sessions.v1.SessionsService/GetSession >"$work/session" 2>&1 || true
    grep -q 'SESSION_STATE_ASSIGNED' "$work/session" && { assigned=true; break; }
    sleep 0.1
  done
  $assigned || fail "the session was not assigned over mTLS: $(cat "$work/session")"
  "$GRPCURL" "${client[@]}" -H "authorization: Bearer $(mint cust-1 customer)" \
    -d "{\"session_id\":\"$session\",\"request_id\":\"tls-complaint\",\"category\":\"CATEGORY_DEPOSIT\",\"reason\":\"COMPLAINT_REASON_AGENT_CONDUCT\",\"description\":\"filed over mTLS\"}" \
    "localhost:$((base + 6))" switchboard.feedback.v1.FeedbackService/FileComplaint \
    >"$work/complaint" 2>&1 || fail "FileComplaint over mTLS: $(cat "$work/complaint")"
  grep -q '"agent_id": "agent-1"\|"agentId": "agent-1"' "$work/complaint" ||
    fail "the complaint does not name the session's agent (feedback->sessions): $(cat "$work/complaint")"
  queued=false
  for _ in $(seq 100); do
    "$GRPCURL" "${client[@]}" -H "authorization: Bearer $(mint sup-1 supervisor)" -d '{}' \
      "localhost:$((base + 2))" switchboard.routing.v1.RoutingService/GetQueueStats \
      >"$work/stats" 2>&1 || true
    grep -q 'ENTRY_KIND_COMPLAINT' "$work/stats" && { queued=true; break; }
    sleep 0.1
  done
  $queued || fail "the complaint did not reach routing's queue (feedback->routing): $(cat "$work/stats")"
fi

# Refusals. Plaintext on every port (healthcheck: gRPC C++ fails at once
# where grpcurl waits for its deadline); on sessions and routing also a
# client certificate of another CA, no client certificate, and a client
# trusting another CA (every service runs the same libs/server code, and its
# log says "mtls", checked below).
bash tools/dev_certs.sh "$work/other" client >/dev/null
healthcheck=./tools/healthcheck/healthcheck
for i in 1 2 3 4 5 6; do
  "$healthcheck" --address="localhost:$((base + i))" >"$work/refused" 2>&1 &&
    fail "localhost:$((base + i)) answered plaintext: $(cat "$work/refused")"
done
for i in 1 2; do
  address="localhost:$((base + i))"
  "$healthcheck" --address="$address" --tls_ca_file="$tls_dir/ca.pem" \
    --tls_cert_file="$tls_dir/client.pem" --tls_key_file="$tls_dir/client.key" \
    >"$work/accepted" 2>&1 || fail "$address refused the local CA's client: $(cat "$work/accepted")"
  "$healthcheck" --address="$address" --tls_ca_file="$tls_dir/ca.pem" \
    --tls_cert_file="$work/other/client.pem" --tls_key_file="$work/other/client.key" \
    >"$work/refused" 2>&1 && fail "$address accepted a client certificate of another CA"
  "$GRPCURL" -max-time 3 -cacert "$tls_dir/ca.pem" "$address" list >"$work/refused" 2>&1 &&
    fail "$address answered a client without a certificate"
  "$GRPCURL" -max-time 3 -cacert "$work/other/ca.pem" -cert "$tls_dir/client.pem" \
    -key "$tls_dir/client.key" "$address" list >"$work/refused" 2>&1 &&
    fail "a client trusting another CA accepted $address"
done

# The CLI over mTLS, and refused without the TLS flags.
sb=(./tools/cli/switchboard supervisor queues --data_dir="$work/data"
  --routing_address="localhost:$((base + 2))")
"${sb[@]}" --tls_ca_file="$tls_dir/ca.pem" --tls_cert_file="$tls_dir/client.pem" \
  --tls_key_file="$tls_dir/client.key" >"$work/cli" 2>&1 || fail "CLI over mTLS: $(cat "$work/cli")"
grep -qi 'deposit' "$work/cli" || fail "CLI over mTLS shows no deposit queue: $(cat "$work/cli")"
"${sb[@]}" --deadline=3s >"$work/cli" 2>&1 && fail "the CLI reached an mTLS port in plaintext"
grep -q 'UNAVAILABLE' "$work/cli" || fail "CLI without TLS: $(cat "$work/cli")"

# Server-side TLS alone (no client certificates, as for frontends): grpcurl
# with nothing but -cacert lists, checks health and calls.
mkdir -p "$work/tls_only"
./services/presence/presence_server --data_dir="$work/tls_only" --port=0 --metrics_port=0 \
  --bind_address=127.0.0.1 --keys_dir="$work/data/keys" \
  --tls_cert_file="$tls_dir/presence.pem" \
  --tls_key_file="$tls_dir/presence.key" 2>"$work/tls_only/log" &
tls_only=$!
port=""
for _ in $(seq 300); do
  port=$(grep -o '"event":"server_started".*"grpc_port":[0-9]*' "$work/tls_only/log" |
    grep -o '[0-9]*$' || true)
  [[ -n "$port" ]] && break
  sleep 0.1
done
if [[ -z "$port" ]]; then
  fail "a TLS-only presence did not start: $(tail -3 "$work/tls_only/log")"
else
  grep -q '"transport":"tls"' "$work/tls_only/log" || fail "presence did not log transport tls"
  "$GRPCURL" -cacert "$tls_dir/ca.pem" "localhost:$port" list >"$work/tls_only/list" 2>&1 ||
    fail "grpcurl -cacert list: $(cat "$work/tls_only/list")"
  grep -qx 'switchboard.presence.v1.PresenceService' "$work/tls_only/list" ||
    fail "grpcurl -cacert list: $(cat "$work/tls_only/list")"
  "$GRPCURL" -cacert "$tls_dir/ca.pem" "localhost:$port" grpc.health.v1.Health/Check \
    >"$work/tls_only/health" 2>&1 || fail "grpcurl -cacert health: $(cat "$work/tls_only/health")"
  grep -q '"status": "SERVING"' "$work/tls_only/health" ||
    fail "grpcurl -cacert health: $(cat "$work/tls_only/health")"
  "$GRPCURL" -cacert "$tls_dir/ca.pem" -H "authorization: Bearer $(mint sup-1 supervisor)" \
    -d '{"agent_id":"agent-7","profile":{"skills":{"categories":["CATEGORY_DEPOSIT"],"languages":["en"]},"capacities":[{"channel":"CHANNEL_CHAT","capacity":1}]}}' \
    "localhost:$port" switchboard.presence.v1.PresenceService/SetAgentProfile \
    >"$work/tls_only/call" 2>&1 || fail "grpcurl -cacert call: $(cat "$work/tls_only/call")"
  grep -q 'CATEGORY_DEPOSIT' "$work/tls_only/call" ||
    fail "grpcurl -cacert call: $(cat "$work/tls_only/call")"
  "$healthcheck" --address="localhost:$port" >/dev/null 2>&1 &&
    fail "the TLS-only port answered plaintext"
fi
kill -TERM "$tls_only" 2>/dev/null || true
wait "$tls_only" || fail "the TLS-only presence did not exit 0"

# Made once: a second pass has nothing to do; keys are the owner's only.
again=$(bash tools/dev_certs.sh "$tls_dir" client sessions routing bot presence identity feedback)
[[ -z "$again" ]] || fail "dev_certs.sh made certificates again: $again"
for key in "$tls_dir"/*.key; do
  [[ $(stat -c %a "$key") == 600 ]] || fail "$key is mode $(stat -c %a "$key")"
done
for name in sessions routing bot presence identity feedback; do
  grep -q '"event":"server_started".*"transport":"mtls"' "$work/data/logs/$name.log" ||
    fail "$name did not start with mTLS"
  grep -q 'plaintext_grpc_on_network' "$work/data/logs/$name.log" &&
    fail "$name warned about plaintext"
done

trap - EXIT
kill -TERM "$launcher"
code=0
wait "$launcher" || code=$?
((code == 0)) || { fail "tools/run.sh --tls exited $code"; tail -12 "$work/run.log" >&2; }
kill -TERM "$PORTS_PID" 2>/dev/null || true
if ((failures)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "mTLS platform checks passed"
