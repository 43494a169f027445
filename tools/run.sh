#!/usr/bin/env bash
# Sets up the machine (tools/setup.sh), builds, and starts every Switchboard
# service that exists so far on localhost with their default ports, wired to
# one data folder (SQLite files, event JSON lines, the development token key).
# Waits until each answers its health check, prints what runs where, and stops
# everything cleanly on Ctrl-C. Restarting keeps the data.
#
#   bash tools/run.sh            # data in ./data, events as JSON lines
#   bash tools/run.sh --kafka    # also a local Kafka broker (KRaft) on 9092;
#                                # events go to its topics
#   SWITCHBOARD_DATA_DIR=/tmp/sb bash tools/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

kafka=false
for arg in "$@"; do
  case "$arg" in
    --kafka) kafka=true ;;
    *) echo "usage: tools/run.sh [--kafka]" >&2; exit 2 ;;
  esac
done

bash tools/setup.sh
data_dir=$(realpath -m "${SWITCHBOARD_DATA_DIR:-data}")

# name grpc_port metrics_port, in DESIGN.md's order.
all_services=("sessions 7101 9101" "routing 7102 9102" "bot 7103 9103"
              "presence 7104 9104" "identity 7105 9105" "feedback 7106 9106")
services=()
targets=(//tools/healthcheck //tools/mint_token //tools/kafka_topics //tools/event_consumer)
for entry in "${all_services[@]}"; do
  read -r name _ _ <<<"$entry"
  if [[ -f "services/$name/BUILD" ]] && grep -q "name = \"${name}_server\"" "services/$name/BUILD"; then
    services+=("$entry")
    targets+=("//services/$name:${name}_server")
  fi
done

echo "run: building ${targets[*]}"
bazel build -c opt "${targets[@]}"
bin=$(bazel info -c opt bazel-bin 2>/dev/null)
mkdir -p "$data_dir/logs"

pids=()
stop() {
  trap - INT TERM EXIT
  if ((${#pids[@]})); then
    echo
    echo "run: stopping (SIGTERM, services drain in-flight calls)"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if $kafka; then
    bash tools/kafka/broker.sh stop "$data_dir/kafka"
  fi
  echo "run: stopped; data kept in $data_dir"
}
trap stop INT TERM EXIT

service_flags=()
if $kafka; then
  echo "run: starting the Kafka broker (data in $data_dir/kafka)"
  brokers=$(bash tools/kafka/broker.sh start "$data_dir/kafka" 9092)
  "$bin/tools/kafka_topics/kafka_topics" --brokers="$brokers" --replication_factor=1 \
    --file=deploy/kafka/topics.conf >/dev/null
  service_flags+=(--kafka_brokers="$brokers")
fi

for entry in "${services[@]}"; do
  read -r name grpc_port metrics_port <<<"$entry"
  "$bin/services/$name/${name}_server" --data_dir="$data_dir" --port="$grpc_port" \
    --metrics_port="$metrics_port" "${service_flags[@]}" 2>>"$data_dir/logs/$name.log" &
  pids+=($!)
done

for entry in "${services[@]}"; do
  read -r name grpc_port _ <<<"$entry"
  if ! "$bin/tools/healthcheck/healthcheck" --address="localhost:$grpc_port" --wait=60s >/dev/null; then
    echo "run: $name did not become healthy; see $data_dir/logs/$name.log" >&2
    tail -5 "$data_dir/logs/$name.log" >&2 || true
    exit 1
  fi
done

echo
printf '%-10s %-18s %-30s %s\n' SERVICE GRPC METRICS LOG
for entry in "${services[@]}"; do
  read -r name grpc_port metrics_port <<<"$entry"
  printf '%-10s %-18s %-30s %s\n' "$name" "localhost:$grpc_port" \
    "http://localhost:$metrics_port/metrics" "$data_dir/logs/$name.log"
done
if $kafka; then
  events_line="Events (Kafka):      $brokers; watch them with
  $bin/tools/event_consumer/event_consumer --brokers=$brokers --from_beginning"
else
  events_line="Events (JSON lines): $data_dir/events/"
fi
cat <<EOF2

$events_line
Token key:           $data_dir/token.key
Try it (grpcurl: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.1):
  mint() { $bin/tools/mint_token/mint_token --key_file=$data_dir/token.key --subject=\$1 --role=\$2; }
  grpcurl -plaintext -H "authorization: Bearer \$(mint agent-1 agent)" \\
    -d '{"status":"AGENT_STATUS_ONLINE","profile":{"skills":{"categories":["CATEGORY_DEPOSIT"],"languages":["en"]},"capacities":[{"channel":"CHANNEL_CHAT","capacity":3}]}}' \\
    localhost:7104 switchboard.presence.v1.PresenceService/SetStatus
  grpcurl -plaintext -H "authorization: Bearer \$(mint cust-1 customer)" \\
    -d '{"channel":"CHANNEL_CHAT","category":"CATEGORY_DEPOSIT","language":"en","request_id":"try-1","first_message":{"text":"my deposit has not arrived"}}' \\
    localhost:7101 switchboard.sessions.v1.SessionsService/CreateSession
  More in README.md.

Ctrl-C stops everything.
EOF2

wait
