#!/usr/bin/env bash
# Sets up the machine (tools/setup.sh), builds, and starts every Switchboard
# service that exists so far on localhost with their default ports, wired to
# one data folder (SQLite files, event JSON lines, the development keys).
# Waits until each answers its health check, prints what runs where, and stops
# everything cleanly on Ctrl-C. Restarting keeps the data.
#
#   bash tools/run.sh            # data in ./data, events as JSON lines
#   bash tools/run.sh --kafka    # also a local Kafka broker (KRaft) on 9092;
#                                # events go to its topics
#   bash tools/run.sh --tls      # every gRPC port serves mTLS and every service
#                                # dials its peers with its certificate: a local
#                                # CA and certificates in DATA_DIR/tls, made once
#                                # by tools/dev_certs.sh (openssl)
#   bash tools/run.sh --postgres # a local PostgreSQL (tools/postgres/server.sh:
#                                # Debian's, data in DATA_DIR/postgres, port
#                                # base+99: 7199) holds every service's state
#                                # instead of SQLite files
#   bash tools/run.sh --postgres --replicas=2
#                                # also a second process of every service on
#                                # ports base+11.. (7111..), metrics
#                                # base+2011.., data (events, logs) in
#                                # DATA_DIR/replica-2: identity, bot and
#                                # feedback replicas all take calls; sessions,
#                                # routing and presence run one leader (the
#                                # first process, started and healthy before
#                                # any other) and hot standbys, which pass
#                                # the calls on their gRPC port to the
#                                # leader (their /metrics shows
#                                # switchboard_leader 0) until it is gone
#                                # and one of them takes over;
#                                # callers reach every process through gRPC's
#                                # round_robin over the address list
#   SWITCHBOARD_DATA_DIR=/tmp/sb bash tools/run.sh
#   SWITCHBOARD_PORT_BASE=30000 bash tools/run.sh
#                                # gRPC on base+1..base+6, metrics on
#                                # base+2001..base+2006 (default 7100: 7101.., 9101..)
#   SWITCHBOARD_BIND_ADDRESS=0.0.0.0 bash tools/run.sh
#                                # listen beyond loopback (default 127.0.0.1;
#                                # without --tls the services warn loudly)
#   SWITCHBOARD_BIN_DIR=dir bash tools/run.sh
#                                # binaries already built under dir (bazel-bin's
#                                # layout): no setup, no build (tests/e2e_test)
# A local ClamAV daemon scans uploads (sessions --clamd_address), on the
# machine's signatures in /var/lib/clamav when freshclam has fetched them, else
# on a database of the EICAR test signature alone (development only: it
# detects nothing real). Its unix socket lives in a folder under /tmp (a
# socket path must fit in 108 bytes); its log is DATA_DIR/logs/clamd.log.
# On SIGTERM or Ctrl-C it stops every service with SIGTERM, prints each one's
# exit code, and exits non-zero if any did not exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."

kafka=false
tls=false
postgres=false
replicas=1
usage="usage: tools/run.sh [--kafka] [--tls] [--postgres [--replicas=N]]"
for arg in "$@"; do
  case "$arg" in
    --kafka) kafka=true ;;
    --tls) tls=true ;;
    --postgres) postgres=true ;;
    --replicas=*) replicas=${arg#--replicas=} ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
if ! [[ "$replicas" =~ ^[1-9]$ ]]; then
  echo "run: --replicas=$replicas: must be a number from 1 to 9" >&2
  exit 2
fi
if ((replicas > 1)) && ! $postgres; then
  echo "run: --replicas=$replicas needs --postgres: replicas share one PostgreSQL database" \
    "(two processes must never share a SQLite file)" >&2
  exit 2
fi

bin=${SWITCHBOARD_BIN_DIR:-}
[[ -n "$bin" ]] || bash tools/setup.sh
data_dir=$(realpath -m "${SWITCHBOARD_DATA_DIR:-data}")
base=${SWITCHBOARD_PORT_BASE:-7100}
# Plaintext is for loopback: a local run listens on 127.0.0.1 unless told.
bind=${SWITCHBOARD_BIND_ADDRESS:-127.0.0.1}
# Where the launcher's tools and the services' peers dial: the address the
# servers listen on, not "localhost", which tries ::1 first, where another
# program may listen on the same port number and answer instead.
case "$bind" in
  0.0.0.0 | :: | '[::]') dial=127.0.0.1 ;;
  *:*) dial="[$bind]" ;;
  *) dial=$bind ;;
esac
tls_dir="$data_dir/tls"

# The services that keep state in memory and hold a lock on the database
# while they lead: their further processes are hot standbys, which wait for
# the lock without serving gRPC. The others' replicas all serve.
leader_elected=" sessions routing presence "
# name grpc_port metrics_port data_dir, in the README's order; replica r of a
# service (r > 1) listens 10 * (r - 1) ports higher.
all_services=()
# Each service's gRPC ports, replicas included ("p1 p2 ...").
declare -A ports
index=0
for name in sessions routing bot presence identity feedback; do
  index=$((index + 1))
  all_services+=("$name $((base + index)) $((base + 2000 + index)) $data_dir")
  ports[$name]=$((base + index))
  for ((r = 2; r <= replicas; r++)); do
    offset=$((10 * (r - 1) + index))
    all_services+=("$name $((base + offset)) $((base + 2000 + offset)) $data_dir/replica-$r")
    ports[$name]+=" $((base + offset))"
  done
done
# Whether entry "name grpc_port metrics_port dir" is a standby.
standby() {
  local name dir
  read -r name _ _ dir <<<"$1"
  [[ "$leader_elected" == *" $name "* && "$dir" != "$data_dir" ]]
}
# A peer's target: its one address, or all its replicas' for gRPC's
# round_robin (libs/client).
peer() {
  local list=(${ports[$1]})
  if ((${#list[@]} == 1)); then
    echo "$dial:${list[0]}"
  else
    local IFS=,
    echo "ipv4:${list[*]/#/127.0.0.1:}"
  fi
}
# Peers' addresses (each service's default is localhost:<default port>).
declare -A peer_flags=(
  [sessions]="--bot_address=$(peer bot) --routing_address=$(peer routing)"
  [routing]="--presence_address=$(peer presence) --sessions_address=$(peer sessions)"
  [feedback]="--sessions_address=$(peer sessions) --routing_address=$(peer routing)"
)
services=()
targets=(//tools/healthcheck //tools/mint_token //tools/kafka_topics //tools/event_consumer)
for entry in "${all_services[@]}"; do
  read -r name _ _ _ <<<"$entry"
  target=//services/$name:${name}_server
  if [[ -n "$bin" ]]; then
    [[ -x "$bin/services/$name/${name}_server" ]] && services+=("$entry")
  elif [[ " ${targets[*]} " == *" $target "* ]]; then
    services+=("$entry")  # a replica
  elif [[ -f "services/$name/BUILD" ]] && grep -q "name = \"${name}_server\"" "services/$name/BUILD"; then
    services+=("$entry")
    targets+=("$target")
  fi
done

if [[ -z "$bin" ]]; then
  echo "run: building ${targets[*]}"
  bazel build -c opt "${targets[@]}"
  bin=$(bazel info -c opt bazel-bin 2>/dev/null)
fi
mkdir -p "$data_dir/logs"

# Development keys (libs/auth/key_folder.h): every key pair of the platform
# in $data_dir/keys, made once. Each service is given the public key sets
# and its own private key only, never the folder.
keys_dir="$data_dir/keys"
if [[ ! -d "$keys_dir" ]]; then
  "$bin/tools/mint_token/mint_token" --generate_keys="$keys_dir" >/dev/null
  echo "run: development keys made in $keys_dir"
fi
# key_flags NAME: sets key_args to the key flags of service NAME.
key_flags() {
  key_args=(--access_keys="$keys_dir/access.jwks" --service_keys="$keys_dir/services.jwks"
    --verification_keys="$keys_dir/verification.jwks")
  case "$1" in
    sessions | routing | feedback) key_args+=(--service_signing_key="$keys_dir/$1.pem") ;;
    identity) key_args+=(--verification_signing_key="$keys_dir/verification.pem") ;;
  esac
}

pids=()
names=()
# "standby" or "" for each of pids.
roles=()
clamd_pid=
clamd_dir=
postgres_started=false
# $1: "signal" (Ctrl-C, SIGTERM: exit 0 if every service exited 0) or "exit".
stop() {
  trap - INT TERM EXIT
  local failed=0 code
  if ((${#pids[@]})); then
    echo
    echo "run: stopping (SIGTERM, services drain in-flight calls)"
    # The standbys first, so that none takes over from a draining leader.
    for role in standby ""; do
      local group=()
      for i in "${!pids[@]}"; do
        [[ "${roles[$i]}" == "$role" ]] && group+=("$i")
      done
      for i in "${group[@]}"; do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
      for i in "${group[@]}"; do
        code=0
        wait "${pids[$i]}" 2>/dev/null || code=$?
        echo "run: ${names[$i]} exited $code"
        ((code == 0)) || failed=1
      done
    done
  fi
  # After the services: none is left scanning.
  if [[ -n "$clamd_pid" ]]; then
    kill -TERM "$clamd_pid" 2>/dev/null || true
    code=0
    wait "$clamd_pid" 2>/dev/null || code=$?
    echo "run: clamd exited $code"
    ((code == 0)) || failed=1
  fi
  [[ -z "$clamd_dir" ]] || rm -rf "$clamd_dir"
  # After the services, which may still be committing.
  if $postgres_started; then
    code=0
    bash tools/postgres/server.sh stop "$data_dir/postgres" || code=$?
    echo "run: postgres exited $code"
    ((code == 0)) || failed=1
  fi
  if $kafka; then
    bash tools/kafka/broker.sh stop "$data_dir/kafka"
  fi
  echo "run: stopped; data kept in $data_dir"
  if [[ "$1" == signal ]] || ((failed)); then
    exit "$failed"
  fi
}
trap 'stop signal' INT TERM
trap 'stop exit' EXIT

service_flags=(--bind_address="$bind")
# What tools (healthcheck, grpcurl, the CLI) dial with.
client_tls=()
if $tls; then
  echo "run: mTLS with the development CA in $tls_dir"
  cert_names=(client)
  for entry in "${services[@]}"; do
    read -r name _ _ _ <<<"$entry"
    [[ " ${cert_names[*]} " == *" $name "* ]] || cert_names+=("$name")
  done
  bash tools/dev_certs.sh "$tls_dir" "${cert_names[@]}" | sed 's/^/run:   made /'
  client_tls=(--tls_ca_file="$tls_dir/ca.pem" --tls_cert_file="$tls_dir/client.pem"
    --tls_key_file="$tls_dir/client.key")
fi
if $kafka; then
  echo "run: starting the Kafka broker (data in $data_dir/kafka)"
  brokers=$(bash tools/kafka/broker.sh start "$data_dir/kafka" 9092)
  "$bin/tools/kafka_topics/kafka_topics" --brokers="$brokers" --replication_factor=1 \
    --file=deploy/kafka/topics.conf >/dev/null
  service_flags+=(--kafka_brokers="$brokers")
fi

if $postgres; then
  pg_port=$((base + 99))
  echo "run: starting PostgreSQL on 127.0.0.1:$pg_port (data in $data_dir/postgres)"
  database=$(bash tools/postgres/server.sh start "$data_dir/postgres" "$pg_port")
  postgres_started=true
  service_flags+=(--database="$database")
fi

clamd=/usr/sbin/clamd
if [[ -x "$clamd" ]]; then
  clamd_dir=$(mktemp -d /tmp/sb-clamd-XXXXXX)
  clamd_socket="$clamd_dir/clamd.sock"
  mkdir "$clamd_dir/tmp"
  if compgen -G '/var/lib/clamav/*.c[lv]d' >/dev/null; then
    clamd_db=/var/lib/clamav
    clamd_line="ClamAV's signatures in $clamd_db"
  else
    clamd_db="$clamd_dir/db"
    mkdir "$clamd_db"
    # An extended (.ndb) signature: the EICAR test file, in any file, at any
    # offset. Written in two halves so that no scanner flags this script.
    eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$'
    eicar+='EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
    echo "Switchboard.Test.EICAR:0:*:$(printf '%s' "$eicar" | od -An -v -tx1 | tr -d ' \n')" \
      >"$clamd_db/switchboard.ndb"
    clamd_line="the EICAR test signature only (development only)"
    echo "run: no ClamAV signatures in /var/lib/clamav: clamd detects only the EICAR" \
      "test file, no real malware (development only)"
  fi
  # StreamMaxLength above sessions' largest file (--max_attachment_mib, 20).
  cat >"$clamd_dir/clamd.conf" <<EOF2
Foreground yes
LocalSocket $clamd_socket
DatabaseDirectory $clamd_db
TemporaryDirectory $clamd_dir/tmp
StreamMaxLength 25M
EOF2
  "$clamd" -c "$clamd_dir/clamd.conf" >>"$data_dir/logs/clamd.log" 2>&1 &
  clamd_pid=$!
  peer_flags[sessions]+=" --clamd_address=unix:$clamd_socket"
else
  clamd_line="none ($clamd is missing; tools/setup.sh installs it): uploads stay PENDING_SCAN"
  echo "run: no $clamd: uploads stay PENDING_SCAN" >&2
fi

# A process's name in messages and its log's: replicas are <name>-<r>.
label() {
  local name=$1 dir=$2
  if [[ "$dir" == "$data_dir" ]]; then echo "$name"; else echo "$name-${dir##*-}"; fi
}
# The body of http://127.0.0.1:PORT/metrics, "" if it does not answer.
metrics() {
  ( exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && cat <&3 ) 2>/dev/null || true
}
# start ENTRY: starts the process of one entry of all_services.
start() {
  local name grpc_port metrics_port dir
  read -r name grpc_port metrics_port dir <<<"$1"
  mkdir -p "$dir"
  key_flags "$name"
  # Each service serves its own certificate, requires one of the local CA
  # from every client, and presents its own to the peers it calls.
  tls_flags=()
  if $tls; then
    tls_flags=(--tls_cert_file="$tls_dir/$name.pem" --tls_key_file="$tls_dir/$name.key"
      --tls_client_ca_file="$tls_dir/ca.pem" --tls_require_client_cert)
    if [[ -n "${peer_flags[$name]:-}" ]]; then
      tls_flags+=(--peer_tls_ca_file="$tls_dir/ca.pem" --peer_tls_cert_file="$tls_dir/$name.pem"
        --peer_tls_key_file="$tls_dir/$name.key")
    fi
  fi
  # shellcheck disable=SC2086  # peer_flags hold several words on purpose
  "$bin/services/$name/${name}_server" --data_dir="$dir" --port="$grpc_port" \
    --metrics_port="$metrics_port" ${peer_flags[$name]:-} "${key_args[@]}" "${service_flags[@]}" \
    "${tls_flags[@]}" 2>>"$data_dir/logs/$(label "$name" "$dir").log" &
  pids+=($!)
  names+=("$(label "$name" "$dir")")
  if standby "$1"; then roles+=(standby); else roles+=(""); fi
}
# Every process that serves first, healthy before any standby starts, so
# that each service's first process leads (its port is the README's).
for entry in "${services[@]}"; do
  standby "$entry" || start "$entry"
done
for entry in "${services[@]}"; do
  standby "$entry" && continue
  read -r name grpc_port _ dir <<<"$entry"
  if ! "$bin/tools/healthcheck/healthcheck" --address="$dial:$grpc_port" "${client_tls[@]}" \
    --wait=60s >/dev/null; then
    log="$data_dir/logs/$(label "$name" "$dir").log"
    echo "run: $(label "$name" "$dir") did not become healthy; see $log" >&2
    tail -5 "$log" >&2 || true
    exit 1
  fi
done
# A standby is up once its /metrics shows it waiting to lead.
for entry in "${services[@]}"; do
  standby "$entry" && start "$entry"
done
for entry in "${services[@]}"; do
  standby "$entry" || continue
  read -r name _ metrics_port dir <<<"$entry"
  for ((i = 0; i < 600; i++)); do
    metrics "$metrics_port" | grep -qE '^switchboard_leader(\{[^}]*\})? 0' && break
    sleep 0.1
  done
  if ((i == 600)); then
    log="$data_dir/logs/$(label "$name" "$dir").log"
    echo "run: $(label "$name" "$dir") did not start as a standby; see $log" >&2
    tail -5 "$log" >&2 || true
    exit 1
  fi
done
# clamd makes its socket once it has loaded its signatures (ClamAV's full set
# takes a while); until then uploads wait PENDING_SCAN.
if [[ -n "$clamd_pid" ]]; then
  for ((i = 0; i < 1200; i++)); do
    [[ -S "$clamd_socket" ]] && break
    if ! kill -0 "$clamd_pid" 2>/dev/null; then
      echo "run: clamd did not start; see $data_dir/logs/clamd.log" >&2
      tail -5 "$data_dir/logs/clamd.log" >&2 || true
      clamd_pid=
      exit 1
    fi
    sleep 0.1
  done
  [[ -S "$clamd_socket" ]] || echo "run: clamd's socket is not there yet; uploads wait" >&2
fi

echo
printf '%-10s %-18s %-30s %s\n' SERVICE GRPC METRICS LOG
for entry in "${services[@]}"; do
  read -r name grpc_port metrics_port dir <<<"$entry"
  note=
  standby "$entry" && note=" (standby: gRPC once it leads)"
  printf '%-10s %-18s %-30s %s%s\n' "$(label "$name" "$dir")" "localhost:$grpc_port" \
    "http://localhost:$metrics_port/metrics" "$data_dir/logs/$(label "$name" "$dir").log" "$note"
done
if $tls; then
  grpcurl_tls="-cacert $tls_dir/ca.pem -cert $tls_dir/client.pem -key $tls_dir/client.key"
  transport_line="Transport:           mTLS: clients need a certificate of $tls_dir/ca.pem
                     (yours: $tls_dir/client.pem); the CLI, healthcheck and loadgen take
                     ${client_tls[*]}"
else
  grpcurl_tls="-plaintext"
  transport_line="Transport:           plaintext on $bind (bash tools/run.sh --tls for mTLS)"
fi
if $kafka; then
  events_line="Events (Kafka):      $brokers; watch them with
  $bin/tools/event_consumer/event_consumer --brokers=$brokers --from_beginning"
else
  events_line="Events (JSON lines): $data_dir/events/"
  ((replicas == 1)) || events_line+=" and each replica's $data_dir/replica-*/events/"
fi
if $postgres; then
  storage_line="Storage:             PostgreSQL $database (psql -h 127.0.0.1 -p $pg_port -U postgres switchboard)"
  ((replicas == 1)) || storage_line+="
                     $replicas processes of every service: identity, bot and feedback share the
                     calls; sessions, routing and presence are a leader and standbys (one takes
                     over when the leader dies); callers reach them with gRPC's round_robin"
else
  storage_line="Storage:             SQLite files in $data_dir (--postgres for PostgreSQL)"
fi
cat <<EOF2

$storage_line
$events_line
$transport_line
Malware scans:       ${clamd_pid:+clamd at unix:$clamd_socket, }$clamd_line
Keys (development):  $keys_dir
Try it (grpcurl is installed by tools/setup.sh):
  mint() { $bin/tools/mint_token/mint_token --keys_dir=$keys_dir --subject=\$1 --role=\$2; }
  tls="$grpcurl_tls"
  grpcurl \$tls localhost:$((base + 1)) list
  grpcurl \$tls localhost:$((base + 1)) grpc.health.v1.Health/Check
  grpcurl \$tls -H "authorization: Bearer \$(mint sup-1 supervisor)" \\
    -d '{"agent_id":"agent-1","profile":{"skills":{"categories":["CATEGORY_DEPOSIT"],"languages":["en"]},"capacities":[{"channel":"CHANNEL_CHAT","capacity":3}]}}' \\
    localhost:$((base + 4)) switchboard.presence.v1.PresenceService/SetAgentProfile
  grpcurl \$tls -H "authorization: Bearer \$(mint agent-1 agent)" \\
    -d '{"status":"AGENT_STATUS_ONLINE"}' \\
    localhost:$((base + 4)) switchboard.presence.v1.PresenceService/SetStatus
  grpcurl \$tls -H "authorization: Bearer \$(mint cust-1 customer)" \\
    -d '{"channel":"CHANNEL_CHAT","category":"CATEGORY_DEPOSIT","language":"en","request_id":"try-1","first_message":{"text":"my deposit has not arrived"}}' \\
    localhost:$((base + 1)) switchboard.sessions.v1.SessionsService/CreateSession
  More in README.md.

Ctrl-C stops everything.
EOF2

wait
