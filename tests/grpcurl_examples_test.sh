#!/usr/bin/env bash
# Runs README.md's "Try it with grpcurl" examples with the real grpcurl
# against the platform started by tools/run.sh (prebuilt binaries, ports
# held for it), then checks that reflection lists every service and that every
# method can be described and called with the token header (any answer but
# UNIMPLEMENTED, UNAUTHENTICATED, INTERNAL or UNKNOWN). Needs grpcurl in
# /usr/local/bin (tools/setup.sh installs it).
#
# With --postgres --replicas=2 (grpcurl_examples_postgres_test), the same on
# `tools/run.sh --postgres --replicas=2`, every replica's port included (the
# standbys of sessions, routing and presence pass calls, reflection's too,
# to their leader: their /metrics must show switchboard_leader 0, the
# leaders' 1), and then:
# no SQLite file anywhere (all state in PostgreSQL); a complaint filed on one
# feedback replica and retried on the other is one complaint; a dialogue
# whose turns alternate between the bot replicas keeps its context; with one bot
# replica killed (SIGKILL) a new session still gets its bot turn through the
# other; with the presence leader killed (SIGKILL) its standby takes over on
# its own port and serves the README's agent; and after a restart of the
# whole platform the README's session is still there.
set -euo pipefail
root="${TEST_SRCDIR:?run with bazel test}/${TEST_WORKSPACE:-switchboard}"
cd "$root"
GRPCURL=/usr/local/bin/grpcurl
[[ -x "$GRPCURL" ]] || GRPCURL=$(command -v grpcurl) ||
  { echo "FAIL: grpcurl not installed; run tools/setup.sh" >&2; exit 1; }
run_flags=("$@")
postgres=false
[[ " ${run_flags[*]} " == *" --postgres "* ]] && postgres=true
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/grpcurl.XXXXXX")
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# run.sh's ports (gRPC base+1..6, metrics base+2001..6; with --postgres also
# PostgreSQL's base+99 and the second replicas' base+11..16, base+2011..16),
# held by a coprocess for as long as this script runs, so that nothing else
# can take them before the servers bind them.
offsets=(1 2 3 4 5 6 2001 2002 2003 2004 2005 2006)
$postgres && offsets+=(99 11 12 13 14 15 16 2011 2012 2013 2014 2015 2016)
coproc PORTS { "$root/libs/testing/hold_ports" "${offsets[@]}"; }
read -r base <&"${PORTS[0]}" || { echo "FAIL: no free port range" >&2; exit 1; }

# Starts tools/run.sh with the given flags; its output goes to $work/run.log.
# The previous run's log goes first: the launcher's shell truncates it only
# once it runs, and its "Ctrl-C stops everything" must not pass for this one.
start_launcher() {
  rm -f "$work/run.log"
  SWITCHBOARD_BIN_DIR="$root" SWITCHBOARD_PORT_BASE=$base SWITCHBOARD_DATA_DIR="$work/data" \
    SWITCHBOARD_DRAIN_DEADLINE=3s bash tools/run.sh "$@" >"$work/run.log" 2>&1 &
  launcher=$!
  for _ in $(seq 600); do
    grep -qs 'Ctrl-C stops everything' "$work/run.log" && break
    kill -0 "$launcher" 2>/dev/null || break
    sleep 0.1
  done
  grep -q 'Ctrl-C stops everything' "$work/run.log" ||
    { echo "FAIL: the platform did not start" >&2; cat "$work/run.log" >&2; exit 1; }
}
stop_launcher() {
  kill -TERM "$launcher" 2>/dev/null || return 0
  local code=0
  wait "$launcher" || code=$?
  ((code == 0)) || { echo "FAIL: tools/run.sh exited $code" >&2; tail -12 "$work/run.log" >&2; }
  return "$code"
}
# PostgreSQL's files may live outside $work (tools/postgres/server.sh, when
# user postgres cannot reach it): removed with it.
cleanup() {
  kill -TERM "$launcher" "$PORTS_PID" 2>/dev/null || true
  wait "$launcher" 2>/dev/null || true
  if [[ -L "$work/data/postgres" ]]; then rm -rf "$(realpath "$work/data/postgres")"; fi
}
trap cleanup EXIT
start_launcher "${run_flags[@]}"

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

# The body of http://127.0.0.1:PORT/metrics, "" if it does not answer.
metrics() {
  ( exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && cat <&3 ) 2>/dev/null || true
}
leader_gauge() { metrics "$1" | grep -oE '^switchboard_leader(\{[^}]*\})? [0-9]+' | awk '{print $2}'; }

# Reflection: every service, every method described and callable, on every
# process (a standby through its leader).
token=$(mint ops-1 supervisor)
methods=0
ports=()
index=0
for name in sessions routing bot presence identity feedback; do
  index=$((index + 1))
  ports+=("$name $((base + index))")
  grep -q "^$name-2 " "$work/run.log" || continue
  case $name in
    sessions | routing | presence)
      [[ "$(leader_gauge $((base + 2000 + index)))" == 1 ]] || fail "$name does not lead"
      [[ "$(leader_gauge $((base + 2010 + index)))" == 0 ]] || fail "$name-2 is no standby"
      ;;
  esac
  ports+=("$name-2 $((base + 10 + index))")
done
for entry in "${ports[@]}"; do
  read -r name port <<<"$entry"
  address="localhost:$port"
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

if $postgres; then
  for name in sessions-2 routing-2 bot-2 presence-2 identity-2 feedback-2; do
    grep -q "^$name " "$work/run.log" || fail "run.sh --replicas=2 started no $name"
  done
  sqlite=$(find "$work/data" -name '*.db' -print)
  [[ -z "$sqlite" ]] || fail "SQLite files on --postgres: $sqlite"
  session=$(grep -hoE '"(session_id|sessionId)": "[^"]*"' "${outputs[@]}" | head -1 | cut -d'"' -f4)

  # One complaint, filed on feedback-2 and retried on feedback (the first
  # answer replayed, the same id).
  complaint() {
    "$GRPCURL" -plaintext -max-time 10 -H "authorization: Bearer $(mint cust-1 customer)" \
      -d "{\"session_id\":\"$session\",\"request_id\":\"replicas-1\",\"category\":\"CATEGORY_DEPOSIT\",\"reason\":\"COMPLAINT_REASON_AGENT_CONDUCT\",\"description\":\"filed twice\"}" \
      "localhost:$1" switchboard.feedback.v1.FeedbackService/FileComplaint 2>&1
  }
  first=$(complaint $((base + 16))) || fail "FileComplaint on feedback-2: $first"
  second=$(complaint $((base + 6))) || fail "FileComplaint retried on feedback: $second"
  id_of() { grep -oE '"(complaint_id|complaintId)": "[^"]*"' <<<"$1" | head -1 | cut -d'"' -f4; }
  [[ -n "$(id_of "$first")" && "$(id_of "$first")" == "$(id_of "$second")" ]] ||
    fail "the retry on another replica made another complaint: $first / $second"
  grep -q '"replayed": true' <<<"$second" || fail "the retry was not replayed: $second"

  # One dialogue spread over bot and bot-2 (as round_robin spreads a
  # session's turns): the not-understood run counts across both, so the
  # third escalates, and a turn retried on the other replica gets its first
  # answer back.
  turn() {
    "$GRPCURL" -plaintext -max-time 10 -H "authorization: Bearer $token" \
      -d "{\"session_id\":\"replicas-dialogue\",\"turn_id\":\"$2\",\"text\":\"$3\"}" \
      "localhost:$1" switchboard.bot.v1.BotService/Answer 2>&1
  }
  t1=$(turn $((base + 3)) t-1 "tell me a joke") || fail "Answer t-1 on bot: $t1"
  t2=$(turn $((base + 13)) t-2 "今天天气怎么样") || fail "Answer t-2 on bot-2: $t2"
  t3=$(turn $((base + 3)) t-3 "sing me a song") || fail "Answer t-3 on bot: $t3"
  grep -q ANSWER_OUTCOME_ESCALATED <<<"$t3" ||
    fail "three not-understood turns over two bot replicas did not escalate: $t1 / $t2 / $t3"
  again=$(turn $((base + 13)) t-1 "tell me a joke") || fail "Answer t-1 retried on bot-2: $again"
  grep -q '"replayed": true' <<<"$again" || fail "t-1 retried on bot-2 was not replayed: $again"

  # bot-2 dies; sessions' round_robin carries on with bot.
  bot2=$(pgrep -f "bot_server .*--port=$((base + 13))( |$)" || true)
  [[ -n "$bot2" ]] || fail "no bot-2 process"
  [[ -z "$bot2" ]] || kill -KILL "$bot2"
  sleep 0.5  # sessions' channel sees the connection close
  for n in 1 2 3; do
    created=$("$GRPCURL" -plaintext -max-time 10 -H "authorization: Bearer $(mint cust-9 customer)" \
      -d "{\"channel\":\"CHANNEL_CHAT\",\"category\":\"CATEGORY_DEPOSIT\",\"language\":\"en\",\"request_id\":\"after-kill-$n\",\"first_message\":{\"text\":\"how long does a bank deposit take?\"}}" \
      "localhost:$((base + 1))" switchboard.sessions.v1.SessionsService/CreateSession 2>&1) ||
      fail "CreateSession $n after bot-2 died: $created"
    sid=$(grep -oE '"(session_id|sessionId)": "[^"]*"' <<<"$created" | head -1 | cut -d'"' -f4)
    answered=false
    for _ in $(seq 50); do
      "$GRPCURL" -plaintext -max-time 5 -H "authorization: Bearer $(mint cust-9 customer)" \
        -d "{\"session_id\":\"$sid\"}" "localhost:$((base + 1))" \
        switchboard.sessions.v1.SessionsService/ListMessages >"$work/messages" 2>&1 || true
      grep -q 'SENDER_ROLE_BOT' "$work/messages" && { answered=true; break; }
      sleep 0.2
    done
    $answered || fail "session $n after bot-2 died got no bot turn: $(cat "$work/messages")"
  done

  # The presence leader dies; its standby takes over on its own port with
  # the state in PostgreSQL (the README's agent).
  presence1=$(pgrep -f "presence_server .*--port=$((base + 4))( |$)" || true)
  [[ -n "$presence1" ]] || fail "no presence process"
  [[ -z "$presence1" ]] || kill -KILL "$presence1"
  took_over=false
  for _ in $(seq 300); do
    if "$GRPCURL" -plaintext -max-time 2 -H "authorization: Bearer $(mint sup-1 supervisor)" \
      -d '{"agent_id":"agent-1"}' "localhost:$((base + 14))" \
      switchboard.presence.v1.PresenceService/GetAgent >"$work/agent" 2>&1; then
      took_over=true
      break
    fi
    sleep 0.1
  done
  $took_over || fail "presence-2 did not take over: $(cat "$work/agent")"
  grep -q 'CATEGORY_DEPOSIT' "$work/agent" || fail "presence-2 lost agent-1: $(cat "$work/agent")"
  [[ "$(leader_gauge $((base + 2014)))" == 1 ]] || fail "presence-2 does not report leading"

  # Every process stops cleanly but the killed ones.
  kill -TERM "$launcher"
  wait "$launcher" || true
  for line in $(grep -oE '^run: [a-z]+(-2)? exited [0-9]+' "$work/run.log" | tr ' ' '_'); do
    [[ "$line" == run:_bot-2_exited_137 || "$line" == run:_presence_exited_137 ||
      "$line" == *_exited_0 ]] || fail "$line"
  done
  grep -q '^run: postgres exited 0' "$work/run.log" || fail "PostgreSQL did not stop cleanly"

  # The state outlives the processes: a new platform on the same database.
  start_launcher --postgres
  got=$("$GRPCURL" -plaintext -max-time 10 -H "authorization: Bearer $(mint cust-1 customer)" \
    -d "{\"session_id\":\"$session\"}" "localhost:$((base + 1))" \
    switchboard.sessions.v1.SessionsService/GetSession 2>&1) || fail "GetSession after restart: $got"
  grep -q "$session" <<<"$got" || fail "the session is gone after a restart: $got"
fi

stop_launcher || failures=$((failures + 1))
if ((failures)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "grpcurl checks passed"
