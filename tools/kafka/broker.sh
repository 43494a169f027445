#!/usr/bin/env bash
# A single-node Apache Kafka broker in KRaft mode (no ZooKeeper) on loopback,
# for tests and local runs.
#
#   broker.sh start DIR [PORT]   start (formatting DIR on first use), wait until
#                                it answers, print "127.0.0.1:PORT"
#   broker.sh stop DIR           stop it and wait for the process to end
#
# PORT defaults to 9092; the controller listens on PORT+1. DIR holds the
# data, the pid file and kafka.log; reuse it to keep topics and records.
# Install the broker first: tools/kafka/install.sh (tools/setup.sh does).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
home=${SWITCHBOARD_KAFKA_HOME:-/opt/switchboard/kafka}
command=${1:-}
dir=${2:-}
port=${3:-9092}
if [[ -z "$command" || -z "$dir" ]]; then
  echo "usage: broker.sh start|stop DIR [PORT]" >&2
  exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pidfile="$dir/broker.pid"

case "$command" in
  start)
    if [[ ! -d "$home/libs" ]]; then
      echo "broker: Kafka is not installed in $home; run tools/setup.sh" >&2
      exit 1
    fi
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "broker: already running (pid $(cat "$pidfile"))" >&2
      exit 1
    fi
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((port + 1))
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$((port + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
    java_opts=(-Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
               "-Dlog4j2.configurationFile=$here/log4j2.properties"
               "-Dkafka.logs.dir=$dir")
    if [[ ! -f "$dir/data/meta.properties" ]]; then
      cluster_id=$(java "${java_opts[@]}" -cp "$home/libs/*" kafka.tools.StorageTool random-uuid | tail -1)
      java "${java_opts[@]}" -cp "$home/libs/*" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$dir/server.properties" >"$dir/format.log" 2>&1
    fi
    nohup java "${java_opts[@]}" -cp "$home/libs/*" kafka.Kafka "$dir/server.properties" \
      >"$dir/stdout.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 600); do
      if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "broker: exited during start; see $dir/kafka.log and $dir/stdout.log" >&2
        exit 1
      fi
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
         grep -q "Kafka Server started" "$dir/stdout.log" "$dir/kafka.log" 2>/dev/null; then
        echo "127.0.0.1:$port"
        exit 0
      fi
      sleep 0.1
    done
    echo "broker: not ready after 60 s; see $dir/kafka.log" >&2
    exit 1
    ;;
  stop)
    if [[ -f "$pidfile" ]]; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    fi
    ;;
  *)
    echo "usage: broker.sh start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
