#!/usr/bin/env bash
# Runs the benchmark suite against binaries already built and writes
# OUT/REPORT.md (markdown), OUT/report.json and, with gnuplot, the latency
# pictures OUT/report/*.svg (plot.sh). tools/loadgen/run_benchmarks.sh
# builds with -c opt and calls this; the smoke test calls it with --smoke.
#
#   suite.sh --bin=BAZEL_BIN --out=DIR [--smoke] [--kafka] [--postgres]
#
# --smoke: seconds and tiny counts, only to prove the instrument works.
# --kafka: also run //libs/events:relay_kafka_benchmark (starts a broker).
# --postgres: also the same measures on PostgreSQL (a local server from
#   tools/postgres/server.sh, on the servers' core, a fresh database per
#   measure): durable SendMessage with sessions on it, on one process and
#   spread over two (the leader and a standby that forwards); the fan-out with
#   the streams on the sessions process, then on a hot standby of it (each
#   delivery crosses processes); and (full runs) journeys with every service
#   on it, one process each and then two of every service (bot and feedback
#   replicas sharing the calls; presence, routing and sessions a leader and a
#   hot standby, which add availability, not throughput).
# Each measure gets fresh servers on free ports and a fresh data folder. With
# two or more cores, servers run on core 0 and the load generator on core 1
# (taskset), so they do not steal each other's cycles; the journey and floor
# benchmarks start their own platform and are not pinned.
set -euo pipefail

bin=""
out=""
smoke=false
kafka=false
postgres=false
for arg in "$@"; do
  case "$arg" in
    --bin=*) bin="${arg#--bin=}" ;;
    --out=*) out="${arg#--out=}" ;;
    --smoke) smoke=true ;;
    --kafka) kafka=true ;;
    --postgres) postgres=true ;;
    *) echo "usage: suite.sh --bin=DIR --out=DIR [--smoke] [--kafka] [--postgres]" >&2; exit 2 ;;
  esac
done
[[ -n "$bin" && -n "$out" ]] || { echo "suite.sh: --bin and --out are required" >&2; exit 2; }
command -v jq >/dev/null || { echo "suite.sh: needs jq (tools/setup.sh installs it)" >&2; exit 2; }

loadgen="$bin/tools/loadgen/loadgen"
mkdir -p "$out/json" "$out/logs"
work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  ! $postgres || bash "$(dirname "$0")/../postgres/server.sh" stop "$work/postgres" || true
  rm -rf "$work"
}
trap cleanup EXIT

# 100,000 streams need far fewer descriptors than that (they share a few
# connections), but sessions' database, WAL and sockets add up.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if $smoke; then
  warmup=200ms duration=1s echo_callers=8 send_callers=8 sessions=600
  fan_sessions=10 idle_small=200 idle_large=1000 idle_sessions=20 channels=2 idle_channels=2
else
  warmup=3s duration=15s echo_callers=64 send_callers=128 sessions=3000
  fan_sessions=500 idle_small=10000 idle_large=100000 idle_sessions=1000 channels=4 idle_channels=16
fi
server_cpu=() loadgen_cpu=()
if (($(nproc) >= 2)) && command -v taskset >/dev/null; then
  server_cpu=(taskset -c 0)
  loadgen_cpu=(taskset -c 1)
fi

# One development key folder for every server and the load generator.
keys="$work/keys"
[[ -d "$keys" ]] || "$bin/tools/mint_token/mint_token" --generate_keys="$keys" >/dev/null

# start_server NAME READY_PATTERN CMD...: starts CMD (stderr to the log),
# waits for READY_PATTERN in its log, sets $server_pid, $server_port and
# $target (what run loads).
start_server() {
  local name=$1 pattern=$2
  shift 2
  local log="$out/logs/$name.log"
  "${server_cpu[@]}" "$@" 2>"$log" &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 300); do
    if grep -q "$pattern" "$log"; then break; fi
    kill -0 "$server_pid" 2>/dev/null || { echo "suite: $name died; see $log" >&2; tail -5 "$log" >&2; exit 1; }
    sleep 0.1
  done
  local line
  line=$(grep -m1 "$pattern" "$log") || { echo "suite: $name did not start" >&2; exit 1; }
  if [[ "$line" == "{"* ]]; then
    # A standby's port is the one it forwards calls from.
    server_port=$(jq -r '.grpc_port // .forwarding_port' <<<"$line")
  else
    server_port=${line##* }
  fi
  target="localhost:$server_port"
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

# start_sessions NAME [FLAGS...]
start_sessions() {
  local name=$1
  shift
  mkdir -p "$work/$name"
  # No bot and no routing: EMAIL sessions stay QUEUED and every figure is
  # sessions' own (a message still commits durably with its outbox event).
  # A standby logs "standby" (with the port it forwards from) instead.
  start_server "$name" '"event":"\(server_started\|standby\)"' "$bin/services/sessions/sessions_server" \
    --data_dir="$work/$name" --port=0 --metrics_port=0 --bot_address= --routing_address= \
    --keys_dir="$keys" "$@"
}

# start_standby NAME DATABASE: a second sessions process on the current
# server's PostgreSQL database, which waits as its hot standby; sets
# $standby_pid and $standby_port and leaves $server_pid, $server_port and
# $target the leader's.
start_standby() {
  local leader_pid=$server_pid leader_port=$server_port
  start_sessions "$1" --database="$2"
  standby_pid=$server_pid standby_port=$server_port
  server_pid=$leader_pid server_port=$leader_port target="localhost:$leader_port"
}

# stop_with_standby: stops the standby, then the current server, so that
# the standby does not take over from it.
stop_with_standby() {
  local leader_pid=$server_pid
  server_pid=$standby_pid
  stop_server
  server_pid=$leader_pid
  stop_server
}

# run NAME LOADGEN_FLAGS...: runs the load generator against the current server.
run() {
  local name=$1
  shift
  echo "suite: $name" >&2
  # A run that saw failures (errors, streams that ended) still wrote its
  # figures, and its row says what failed; the other measures go on.
  if ! "${loadgen_cpu[@]}" "$loadgen" --label="$name" --target="$target" \
    --server_pid="$server_pid" --warmup="$warmup" --json_out="$out/json/$name.json" "$@" \
    >&2 2>>"$out/logs/loadgen.log"; then
    echo "suite: $name reported failures (see its row and $out/logs/loadgen.log)" >&2
  fi
  [[ -s "$out/json/$name.json" ]] || { echo "suite: $name produced no result" >&2; exit 1; }
}

# count_fsyncs NAME SECONDS: counts fsync/fdatasync of the current server
# over the measured window (perf tracepoints) in the background, from when
# the load generator creates $work/NAME.window; result in $work/NAME.fsyncs
# (-1 when perf cannot count).
count_fsyncs() {
  local name=$1 seconds=$2
  (
    for _ in $(seq 6000); do [[ -f "$work/$name.window" ]] && break; sleep 0.01; done
    if command -v perf >/dev/null &&
      perf stat -x, -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync \
        -p "$server_pid" -- sleep "$seconds" 2>"$work/$name.perf" >/dev/null; then
      awk -F, '{n += $1} END {print n + 0}' "$work/$name.perf" >"$work/$name.fsyncs"
    else
      echo -1 >"$work/$name.fsyncs"
    fi
  ) &
  fsync_counter=$!
}
# "200ms" or "3s" -> seconds.
seconds() { awk -v d="$1" 'BEGIN { if (d ~ /ms$/) print substr(d, 1, length(d) - 2) / 1000; else print substr(d, 1, length(d) - 1) }'; }

if $postgres; then
  pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  pg_uri=$("${server_cpu[@]}" bash "$(dirname "$0")/../postgres/server.sh" start "$work/postgres" "$pg_port")
fi
# new_database NAME: creates database NAME on that server, prints its URI.
new_database() {
  psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "CREATE DATABASE $1" >&2
  echo "${pg_uri%/*}/$1"
}

# 1. Baselines: bare echo, then the same echo behind the bootstrap.
start_server bare_echo "listening on port" "$bin/tools/loadgen/bare_echo_server" --port=0
run echo_bare --scenario=echo --channels="$channels" --concurrency="$echo_callers" --duration="$duration"
stop_server
start_server bootstrap_echo server_started "$bin/tools/loadgen/bootstrap_echo_server" \
  --port=0 --metrics_port=0 --keys_dir="$keys"
run echo_bootstrap --scenario=echo --keys_dir="$keys" --channels="$channels" \
  --concurrency="$echo_callers" --duration="$duration"
stop_server

# 2. Durable SendMessage at saturation, with the fsyncs it cost.
start_sessions sessions_send
count_fsyncs send_message "$(seconds "$duration")"
run send_message --scenario=send_message --keys_dir="$keys" --channels="$channels" \
  --window_marker="$work/send_message.window" \
  --sessions="$sessions" --concurrency="$send_callers" --duration="$duration"
wait "$fsync_counter" || true
stop_server
send_qps=$(jq -r '.qps | floor' "$out/json/send_message.json")
if $postgres; then
  start_sessions sessions_send_postgres --database="$(new_database send_message)"
  run send_message_postgres --scenario=send_message --keys_dir="$keys" --channels="$channels" \
    --sessions="$sessions" --concurrency="$send_callers" --duration="$duration"
  stop_server
  # Two sessions processes on one database, the calls spread over both: the
  # leader and a hot standby that passes its half on to the leader. The CPU
  # per call is both processes'.
  send_database=$(new_database send_message_replicas)
  start_sessions sessions_send_leader --database="$send_database"
  start_standby sessions_send_standby "$send_database"
  leader_pid=$server_pid
  server_pid="$leader_pid,$standby_pid" target="$target,localhost:$standby_port"
  run send_message_postgres_replicas --scenario=send_message --keys_dir="$keys" \
    --channels="$channels" --sessions="$sessions" --concurrency="$send_callers" \
    --duration="$duration"
  server_pid=$leader_pid
  stop_with_standby
fi

# 3. Fan-out at half the saturation rate: 4 subscribers per session.
fan_rate=$((send_qps / 2))
((fan_rate >= 1)) || fan_rate=1
# At most 10 messages per second per sender and session: keep each session
# at 5/s or less.
fan_needed=$(((fan_rate + 4) / 5))
((fan_sessions >= fan_needed)) || fan_sessions=$fan_needed
start_sessions sessions_fanout
run fanout --scenario=fanout --keys_dir="$keys" --channels="$channels" \
  --sessions="$fan_sessions" --subscribers=4 --mode=open --rate="$fan_rate" --duration="$duration"
stop_server
if $postgres; then
  # The same on PostgreSQL at half its own saturation rate: the streams on
  # the process that commits, then on a hot standby of it (another process
  # on the same database, passing the streams on to the leader), so each
  # delivery crosses processes as it does for a client of a replicated
  # deployment.
  pg_fan_rate=$(($(jq -r '.qps | floor' "$out/json/send_message_postgres.json") / 2))
  ((pg_fan_rate >= 1)) || pg_fan_rate=1
  fan_database=$(new_database fanout)
  start_sessions sessions_fanout_postgres --database="$fan_database"
  run fanout_postgres --scenario=fanout --keys_dir="$keys" --channels="$channels" \
    --sessions="$fan_sessions" --subscribers=4 --mode=open --rate="$pg_fan_rate" --duration="$duration"
  start_standby sessions_fanout_standby "$fan_database"
  run fanout_postgres_standby --scenario=fanout --keys_dir="$keys" --channels="$channels" \
    --stream_target="localhost:$standby_port" --stream_server_pid="$standby_pid" \
    --sessions="$fan_sessions" --subscribers=4 \
    --mode=open --rate="$pg_fan_rate" --duration="$duration"
  stop_with_standby
fi

# 4. Idle streams: SendMessage at saturation while N streams are held.
for n in "$idle_small" "$idle_large"; do
  start_sessions "sessions_idle_$n"
  run "idle_$n" --scenario=send_message --keys_dir="$keys" --channels="$idle_channels" \
    --sessions="$sessions" --concurrency="$send_callers" --duration="$duration" \
    --hold_streams="$n" --hold_sessions="$idle_sessions"
  stop_server
done

# 5. Routing decisions/s and enqueue-to-offer latency: in-process over the
# routing domain logic and its SQLite store (routing_benchmark's header says
# what a decision is), on the servers' core.
if [[ -x "$bin/tools/loadgen/routing_benchmark" ]]; then
  echo "suite: routing" >&2
  if $smoke; then routing_counts=(--agents=50 --queued=200); else routing_counts=(--agents=1000 --queued=10000); fi
  "${server_cpu[@]}" "$bin/tools/loadgen/routing_benchmark" "${routing_counts[@]}" \
    --warmup="$warmup" --duration="$duration" --json_out="$out/json/routing.json" \
    >/dev/null 2>"$out/logs/routing_benchmark.log"
  [[ -s "$out/json/routing.json" ]] || { echo "suite: routing produced no result" >&2; exit 1; }
fi

# 6. The bot's and the relay's own benchmarks (full runs only; they are
# their own targets and have their own smoke runs).
if ! $smoke; then
  if [[ -x "$bin/services/bot/bot_benchmark" ]]; then
    echo "suite: bot_benchmark" >&2
    "${server_cpu[@]}" "$bin/services/bot/bot_benchmark" >"$out/logs/bot_benchmark.txt" 2>&1 || true
    # "real base (49 intents)  turns=20000  p50=6.6us  p99=15.1us  max=122.9us"
    sed -nE 's/^real base.*p50=([0-9.]+)us +p99=([0-9.]+)us +max=([0-9.]+)us.*/{"label":"bot","p50_us":\1,"p99_us":\2,"max_us":\3}/p' \
      "$out/logs/bot_benchmark.txt" | head -n 1 >"$out/json/bot.json"
    [[ -s "$out/json/bot.json" ]] || rm -f "$out/json/bot.json"
  fi
  # 7. Full journeys per second across the processes (journey_benchmark's
  # header says what a journey is); it starts its own platform.
  if [[ -x "$bin/tools/loadgen/journey_benchmark" ]]; then
    echo "suite: journeys" >&2
    "$bin/tools/loadgen/journey_benchmark" 2>"$out/logs/journey_benchmark.log" |
      tail -n 1 >"$out/json/journeys.json" || true
    [[ -s "$out/json/journeys.json" ]] || rm -f "$out/json/journeys.json"
    if $postgres; then
      for label in journeys_postgres journeys_postgres_replicas; do
        replicas=1
        [[ "$label" == *_replicas ]] && replicas=2
        echo "suite: $label" >&2
        "$bin/tools/loadgen/journey_benchmark" --database="$(new_database "$label")" \
          --replicas="$replicas" --label="$label" 2>"$out/logs/$label.log" |
          tail -n 1 >"$out/json/$label.json" || true
        [[ -s "$out/json/$label.json" ]] || rm -f "$out/json/$label.json"
      done
    fi
  fi
  if $kafka && [[ -x "$bin/libs/events/relay_kafka_benchmark" ]]; then
    echo "suite: relay_kafka_benchmark" >&2
    "$bin/libs/events/relay_kafka_benchmark" >"$out/logs/relay_kafka_benchmark.txt" 2>&1 || true
  fi
fi

# 8. A support floor on one node (floor_benchmark's header says what flows);
# it starts its own platform. The smoke run plays it with a few
# conversations and second-long pauses.
if [[ -x "$bin/tools/loadgen/floor_benchmark" ]]; then
  echo "suite: floor" >&2
  if $smoke; then
    floor_flags=(--conversations=50 --agents=5 --messages=3 --send_interval_min=1s
                 --send_interval_max=2s --reply_delay_min=100ms --reply_delay_max=300ms
                 --ramp=2s --settle=1s --duration=6s)
  else
    floor_flags=(--conversations=10000 --agents=500 --ramp=150s --duration=180s)
  fi
  "$bin/tools/loadgen/floor_benchmark" "${floor_flags[@]}" --json_out="$out/json/floor.json" \
    >"$out/logs/floor_benchmark.txt" 2>"$out/logs/floor_benchmark.log" || true
  [[ -s "$out/json/floor.json" ]] || { echo "suite: floor produced no result" >&2; tail -5 "$out/logs/floor_benchmark.log" >&2; exit 1; }
fi

# ---- the report ----
fsyncs=$(cat "$work/send_message.fsyncs" 2>/dev/null || echo -1)
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem_gib=$(awk '/MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
machine=$(jq -n --arg cpu "$cpu_model" --argjson nproc "$(nproc)" --arg mem "$mem_gib" \
  --arg kernel "$(uname -r)" --argjson pinned "$( ((${#server_cpu[@]})) && echo true || echo false)" \
  '{cpu: $cpu, nproc: $nproc, memory_gib: ($mem | tonumber), kernel: $kernel,
    pinned: $pinned}')
jq -s --argjson machine "$machine" --argjson fsyncs "$fsyncs" --arg smoke "$smoke" \
  --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  '{date: $date, smoke: ($smoke == "true"), machine: $machine,
    send_message_fsyncs: $fsyncs, runs: (map({(.label): .}) | add)}' \
  "$out"/json/*.json >"$out/report.json"

jq -r -f "$(dirname "$0")/report.jq" "$out/report.json" >"$out/REPORT.md"
# The latency distributions as pictures beside the tables (report/*.svg,
# linked relative to REPORT.md).
{
  printf '\n## Latency distributions\n\n'
  if command -v gnuplot >/dev/null; then
    echo "Latency against percentile (both on log scales, so that each nine of the tail gets the same width), one picture per run, from the histograms in \`report.json\` (\`buckets_us\`)."
    echo
    for picture in $(bash "$(dirname "$0")/plot.sh" "$out/report.json" "$out/report"); do
      printf '![%s](report/%s.svg)\n\n' "$picture" "$picture"
    done
  else
    echo "Not drawn: gnuplot is not installed on this machine (\`bash tools/setup.sh\` installs gnuplot-nox). The histograms are in \`report.json\` (\`buckets_us\`)."
  fi
} >>"$out/REPORT.md"
if ! $smoke; then
  for f in bot_benchmark relay_kafka_benchmark; do
    if [[ -s "$out/logs/$f.txt" ]]; then
      printf '\n### %s\n\n```\n%s\n```\n' "$f" "$(cat "$out/logs/$f.txt")" >>"$out/REPORT.md"
    fi
  done
fi
echo "suite: wrote $out/REPORT.md and $out/report.json" >&2
