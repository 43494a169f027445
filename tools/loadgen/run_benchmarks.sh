#!/usr/bin/env bash
# Builds the suite with -c opt, runs it on this machine and writes
# tools/loadgen/REPORT.md, tools/loadgen/report.json and the latency pictures
# tools/loadgen/report/*.svg (the last report; raw runs and server logs go to
# tools/loadgen/last_run/, not committed).
#
#   bash tools/loadgen/run_benchmarks.sh            # about 15 minutes; SQLite, then
#                                                   # the PostgreSQL rows (suite.sh --postgres)
#   bash tools/loadgen/run_benchmarks.sh --kafka    # also the relay to a real Kafka broker
#   bash tools/loadgen/run_benchmarks.sh --smoke    # seconds: does the instrument work?
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tools/setup.sh
targets=(//tools/loadgen:loadgen //tools/loadgen:bare_echo_server
         //tools/loadgen:bootstrap_echo_server //tools/mint_token
         //services/sessions:sessions_server //services/bot:bot_benchmark
         //tools/loadgen:routing_benchmark //tools/loadgen:journey_benchmark
         //tools/loadgen:floor_benchmark //services/presence:presence_server
         //services/routing:routing_server //services/bot:bot_server
         //services/feedback:feedback_server)
for arg in "$@"; do
  [[ "$arg" == --kafka ]] && targets+=(//libs/events:relay_kafka_benchmark)
done
bazel build -c opt "${targets[@]}"
bin=$(bazel info -c opt bazel-bin 2>/dev/null)
out=tools/loadgen/last_run
rm -rf "$out"
bash tools/loadgen/suite.sh --bin="$bin" --out="$out" --postgres "$@"
cp "$out/REPORT.md" tools/loadgen/REPORT.md
cp "$out/report.json" tools/loadgen/report.json
rm -rf tools/loadgen/report
if [[ -d "$out/report" ]]; then cp -r "$out/report" tools/loadgen/report; fi
cat tools/loadgen/REPORT.md
