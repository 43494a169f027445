# Turns suite.sh's report.json into REPORT.md: one row per figure, its target
# (issue 8) and whether it met it; every throughput also as a ratio to the
# bare echo measured in the same run.
def f(x): if x == null then "–" else ((x * 100 | round) / 100 | tostring) end;
def i(x): if x == null then "–" else (x | round | tostring) end;
def ms(x): if x == null then "–" else ((x / 10 | round) / 100 | tostring) + " ms" end;
def pct(x): if x == null then "–" else ((x * 1000 | round) / 10 | tostring) + " %" end;
def verdict(ok): if ok == null then "–" elif ok then "met" else "**missed**" end;
def errs(r): if (r.errors | length) == 0 then "" else " (errors: " + (r.errors | tostring) + ")" end;

.runs as $r
| ($r.echo_bare.qps) as $bare
| ($r.send_message) as $send
| (if .send_message_fsyncs > 0 then $send.ok / .send_message_fsyncs else null end) as $per_fsync
| [
  "# Benchmark report",
  "",
  "Run \(.date)\(if .smoke then " (SMOKE RUN: tiny counts, figures mean nothing)" else "" end) on \(.machine.cpu), \(.machine.nproc) cores, \(.machine.memory_gib) GiB, Linux \(.machine.kernel); " +
    (if .machine.pinned then "servers pinned to core 0, the load generator to core 1." else "no CPU pinning." end),
  "Built with `-c opt`. Latency percentiles from the load generator's log-linear histogram (<0.8 % bucket error); open-loop latencies run from each call's scheduled start. Server CPU from /proc/PID/stat over the measured window.",
  "",
  "| # | Measure | Figure | Ratio to bare echo | Target | Verdict |",
  "|---|---|---|---|---|---|",
  "| 1 | bare echo (callback API, nothing else), closed loop \($r.echo_bare.concurrency) callers | \(i($bare)) QPS, p99 \(ms($r.echo_bare.latency.p99_us)), \(f($r.echo_bare.server.cpu_us_per_request)) µs server CPU/call\(errs($r.echo_bare)) | 1 | – | – |",
  "| 1 | echo behind the bootstrap (auth, metrics, health) | \(i($r.echo_bootstrap.qps)) QPS, p99 \(ms($r.echo_bootstrap.latency.p99_us)), \(f($r.echo_bootstrap.server.cpu_us_per_request)) µs CPU/call\(errs($r.echo_bootstrap)) | \(pct($r.echo_bootstrap.qps / $bare)) QPS, p99 ×\(f($r.echo_bootstrap.latency.p99_us / $r.echo_bare.latency.p99_us)) | ≥ 90 % QPS | \(verdict($r.echo_bootstrap.qps / $bare >= 0.9)) |",
  "| 2 | durable SendMessage at saturation (\($send.sessions) sessions, \($send.concurrency) callers) | \(i($send.qps)) QPS, p99 \(ms($send.latency.p99_us)), \(f($send.server.cpu_us_per_request)) µs CPU/call\(errs($send)) | \(pct($send.qps / $bare)) | ≥ 40 % | \(verdict($send.qps / $bare >= 0.4)) |",
  "| 2 | messages per fsync during that window (\(.send_message_fsyncs) fsync+fdatasync calls, perf tracepoints) | \(f($per_fsync)) | – | ≥ 8 per commit | \(verdict(if $per_fsync == null then null else $per_fsync >= 8 end)) |",
  "| 3 | fan-out: \($r.fanout.rate)/s offered (50 % of #2), \($r.fanout.sessions) sessions × 4 subscribers, send→receive | p50 \(ms($r.fanout.fanout.delivery.p50_us)), p99 \(ms($r.fanout.fanout.delivery.p99_us)) over \($r.fanout.fanout.delivery.count) of \($r.fanout.fanout.expected_deliveries) deliveries; SendMessage p99 \(ms($r.fanout.latency.p99_us))\(errs($r.fanout)) | – | p99 ≤ 10 ms | \(verdict($r.fanout.fanout.delivery.p99_us <= 10000)) |"
  ]
+ [($r.send_message_postgres // empty) as $pg
  | "| 2 | the same SendMessage load with sessions on PostgreSQL 15 (`--database`, one process; a local server on the same core, its CPU not counted here) | \(i($pg.qps)) QPS, p99 \(ms($pg.latency.p99_us)), \(f($pg.server.cpu_us_per_request)) µs sessions CPU/call\(errs($pg)) | \(pct($pg.qps / $bare)); \(pct($pg.qps / $send.qps)) of SQLite's | – | – |"]
+ [($r.send_message_postgres_replicas // empty) as $pr
  | "| 2 | the same on PostgreSQL with two sessions processes, the callers' channels split between the leader and a hot standby that passes its calls on to it | \(i($pr.qps)) QPS, p99 \(ms($pr.latency.p99_us)), \(f($pr.server.cpu_us_per_request)) µs CPU/call in both processes\(errs($pr)) | \(pct($pr.qps / $bare)); \(if $r.send_message_postgres then pct($pr.qps / $r.send_message_postgres.qps) + " of one process's" else "–" end) | – | – |"]
+ [$r.fanout_postgres, $r.fanout_postgres_standby | select(. != null)
  | (.fanout.stream_target != .target) as $across
  | "| 3 | the fan-out with sessions on PostgreSQL 15: \(.rate)/s offered (50 % of its SendMessage), \(.sessions) sessions × 4 subscribers, \(if $across then "the streams on a hot standby, which passes them to the leader: each delivery crosses processes" else "the streams on the process that commits" end) | p50 \(ms(.fanout.delivery.p50_us)), p99 \(ms(.fanout.delivery.p99_us)) over \(.fanout.delivery.count) of \(.fanout.expected_deliveries) deliveries; SendMessage p99 \(ms(.latency.p99_us)); leader \(f(.server.cpu_us_per_request)) µs CPU per message\(if .fanout.stream_server then ", standby \(f(.fanout.stream_server.cpu_us_per_delivery)) µs per delivery" else "" end)\(errs(.)) | – | \(if $across then "p99 ≤ 50 ms across replicas" else "–" end) | \(if $across then verdict(.fanout.delivery.p99_us <= 50000 and .fanout.delivery.count > 0) else "–" end) |"]
+ ([$r | to_entries[] | select(.key | startswith("idle_")) | .value] | sort_by(.hold.streams) | map(
  "| 4 | \(.hold.streams) idle StreamSessionEvents on \(.hold.sessions) sessions, \(.channels) channels | \(f(.hold.kib_per_stream)) KiB server RSS per stream (\(.hold.rss_kib_before) → \(.hold.rss_kib_held) KiB); SendMessage \(i(.qps)) QPS while held, p99 \(ms(.latency.p99_us))\(errs(.)) | \(pct(.qps / $bare)); \(pct(.qps / $send.qps)) of #2 | ≤ 48 KiB/stream, ≥ 90 % QPS | \(verdict(.hold.kib_per_stream <= 48 and .qps / $send.qps >= 0.9 and .hold.all_caught_up)) |"))
+ [
  (if $r.bot then "| 6 | bot Answer on the real knowledge base (`//services/bot:bot_benchmark`, in-process) | p50 \($r.bot.p50_us) µs, p99 \($r.bot.p99_us) µs, max \($r.bot.max_us) µs | – | p99 ≤ 200 µs | \(verdict($r.bot.p99_us <= 200)) |" else empty end),
  (if $r.routing then
    "| 5 | routing decisions/s (`routing_benchmark`, in-process Router on its SQLite store; a decision is one offer made: pick the entry, rank agents, reserve, record, commit), \($r.routing.agents) agents, \($r.routing.queued) queued | \(if $r.routing.drain then "\(i($r.routing.drain.decisions_per_s)) decisions/s draining \($r.routing.drain.offered) queued (no accepts); " else "" end)\(i($r.routing.decisions_per_s)) decisions/s with every offer accepted and resolved (\($r.routing.workers) workers); enqueue→offer with a free agent p50 \(ms($r.routing.enqueue_to_offer.p50_us)), p99 \(ms($r.routing.enqueue_to_offer.p99_us)); queue wait behind \($r.routing.queued) at saturation p99 \(ms($r.routing.queue_wait.p99_us)) | – | ≥ 50,000/s | \(verdict(([$r.routing.decisions_per_s, ($r.routing.drain.decisions_per_s // 0)] | max) >= 50000)) |"
  else "| 5 | routing decisions/s, 1,000 agents, 10,000 queued | not measured in this run | – | ≥ 50,000/s | – |" end),
  (if $r.journeys then
    "| 7 | full journeys/s across the processes (`journey_benchmark`: create → bot escalates → offer, auto-accept → \($r.journeys.journey | capture("(?<n>[0-9]+) messages").n) messages → resolve → rate), \($r.journeys.concurrency) concurrent customers, \($r.journeys.agents) agents | \(f($r.journeys.journeys_per_s)) journeys/s (\($r.journeys.completed) of \($r.journeys.journeys)); journey p50 \($r.journeys.latency_ms.p50) ms, p99 \($r.journeys.latency_ms.p99) ms | – | – | – |"
  else "| 7 | full journeys/s across the processes | not measured in this run | – | – | – |" end),
  ($r.journeys_postgres, $r.journeys_postgres_replicas | select(. != null)
   | "| 7 | the same journeys with every service on one PostgreSQL 15 database, \(if .replicas > 1 then "\(.replicas) processes of every service (bot, feedback: replicas sharing the calls; sessions, routing, presence: a leader and standbys, which pass their calls to it: availability, not throughput)" else "one process each" end) | \(f(.journeys_per_s)) journeys/s (\(.completed) of \(.journeys)); journey p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms | \(if $r.journeys then pct(.journeys_per_s / $r.journeys.journeys_per_s) + " of SQLite's" else "–" end) | – | – |"),
  (if $r.floor then
    ($r.floor) as $fl
    | "| 8 | a support floor on one node (`floor_benchmark`, run \($fl.date), load average \($fl.load_average.window_start) → \($fl.load_average.window_end)): \($fl.conversations) concurrent chat conversations (\($fl.human_percent) % ask for a human), \($fl.agents) agents (capacity \($fl.agent_capacity)) with their offer watches and session streams open, each customer one message every \($fl.send_interval_s[0])–\($fl.send_interval_s[1]) s with their stream open; \($fl.seconds) s measured after a \($fl.ramp_seconds) s ramp | send→receive (SendMessage call → the other party's stream) p50 \(ms($fl.delivery.p50_us)), p99 \(ms($fl.delivery.p99_us)), max \(ms($fl.delivery.max_us)) over \($fl.delivery.count) deliveries (customer→agent p99 \(ms($fl.to_agent.p99_us)), agent→customer p99 \(ms($fl.to_customer.p99_us))); bot turn p99 \(ms($fl.bot_turn.p99_us)); escalation→agent p99 \(ms($fl.agent_wait.p99_us)); errors \(if ($fl.errors | length) == 0 then "none" else ($fl.errors | tostring) end); servers \(f($fl.servers_total.cpu_seconds)) CPU s = \(f($fl.servers_total.cpu_percent)) % of a core, RSS \(($fl.servers_total.rss_kib / 1024) | round) MiB (per service below) | – | p99 ≤ 50 ms, 0 errors | \(verdict($fl.delivery.p99_us <= 50000 and ($fl.errors | length) == 0 and $fl.delivery.count > 0)) |"
  else "| 8 | a support floor on one node, 10,000 conversations, 500 agents | not measured in this run | – | p99 ≤ 50 ms, 0 errors | – |" end),
  (if $r.floor then
    ($r.floor) as $fl
    | "",
      "Support floor (#8), each server process over the measured window (CPU from /proc/PID/stat, RSS at the window's end); the benchmark itself (all customers and agents) took \(f($fl.loadgen.cpu_percent)) % of a core. Flows in the window: \($fl.counts | to_entries | map("\(.key) \(.value)") | join(", ")).",
      "",
      "| service | CPU s | % of a core | RSS MiB |",
      "|---|---|---|---|",
      ($fl.servers | to_entries[] | "| \(.key) | \(f(.value.cpu_seconds)) | \(f(.value.cpu_percent)) | \(f(.value.rss_kib / 1024)) |")
  else empty end),
  "",
  "Bot Answer latency (#6) and the relay to Kafka (#6, with `--kafka`) come from their own benchmarks, printed below when run.",
  "Raw figures: `report.json` (one object per run, as the load generator printed it)."
  ]
| .[]
