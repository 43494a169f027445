// The Switchboard load generator: drives one scenario against a running
// server with a closed loop (N concurrent callers) or an open loop (a target
// rate, latency from each call's scheduled start), over several channels, and
// prints a human summary plus one JSON object (also written to --json_out).
//
//   loadgen --scenario=echo --target=localhost:7190 --mode=closed --concurrency=64
//   loadgen --scenario=echo --target=localhost:7191 --keys_dir=DIR ...
//   loadgen --scenario=send_message --target=localhost:7101 --keys_dir=DIR
//       --sessions=2000 --mode=open --rate=3000 --duration=20s
//   loadgen --scenario=send_message --target=localhost:7101,localhost:7111 ...
//   loadgen --scenario=fanout --subscribers=4 --sessions=500 --mode=open --rate=1000 ...
//   loadgen --scenario=send_message --hold_streams=100000 --hold_sessions=1000 ...
//
// Scenarios:
//   echo          bench.v1.EchoService/Echo with --payload_bytes (the
//                 baselines); with --keys_dir every call carries a
//                 supervisor's access token.
//   send_message  sessions' durable SendMessage. Setup creates --sessions
//                 EMAIL sessions, each for its own customer (the server allows
//                 10 messages per second per sender and session, so the
//                 sessions bound the rate: keep --sessions above rate / 8);
//                 calls go round-robin over them as their customers.
//   fanout        send_message whose text carries the send time, with
//                 --subscribers StreamSessionEvents streams (supervisor tokens)
//                 on every session: reports send-to-receive latency over every
//                 delivery next to SendMessage's own latency. With
//                 --stream_target the streams dial another process (a
//                 standby that forwards them to the leader), so each
//                 delivery crosses processes.
// With --hold_streams=N any scenario first opens N idle StreamSessionEvents
// streams on --hold_sessions other sessions, waits until each has caught up,
// and holds them during the load (server RSS before and after is reported).
// --target may list several addresses (comma-separated): the channels go to
// them in turn, e.g. two replicas of a service. With --server_pid the
// server's CPU time over the measured window (from /proc/PID/stat) and its
// RSS (/proc/PID/status) are reported; several pids (comma-separated) are
// summed.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/key_folder.h"
#include "libs/auth/token.h"
#include "libs/client/tls.h"
#include "libs/config/flags.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"
#include "tools/loadgen/channels.h"
#include "tools/loadgen/echo.grpc.pb.h"
#include "tools/loadgen/histogram.h"
#include "tools/loadgen/load.h"
#include "tools/loadgen/results.h"

namespace switchboard::loadgen {
namespace {

namespace sv1 = ::switchboard::sessions::v1;
using StreamResponse = sv1::StreamSessionEventsResponse;

struct Config {
  std::string scenario = "echo";
  std::string target = "localhost:7190";
  // fanout: where the subscribers' streams go; empty: target.
  std::string stream_target;
  client::ClientTlsOptions tls;
  int channels = 4;
  std::string mode = "closed";
  int concurrency = 32;
  int rate = 1000;
  absl::Duration warmup = absl::Seconds(2);
  absl::Duration duration = absl::Seconds(10);
  int64_t requests = 0;
  absl::Duration deadline = absl::Seconds(10);
  std::string keys_dir;
  int payload_bytes = 16;
  int sessions = 1000;
  int subscribers = 4;
  int hold_streams = 0;
  int hold_sessions = 1000;
  absl::Duration stream_timeout = absl::Seconds(300);
  // Comma-separated pids; their CPU and RSS are summed.
  std::string server_pid;
  // fanout: the pid of the process at stream_target, for its CPU time.
  int stream_server_pid = 0;
  std::string label;
  std::string json_out;
  std::string window_marker;
};

// ---- channels, tokens ----

// --channels channels over `targets` ("host:port,host:port"), in turn.
std::vector<std::shared_ptr<grpc::Channel>> MakeChannels(const Config& config,
                                                         const std::string& targets,
                                                         const client::ChannelSecurity& security) {
  const std::vector<std::string> addresses = absl::StrSplit(targets, ',', absl::SkipEmpty());
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < std::max(1, config.channels); ++i) {
    channels.push_back(
        security.Channel(addresses[i % addresses.size()], DistinctChannelArguments(i)));
  }
  return channels;
}

bool WaitForConnected(const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  for (const auto& channel : channels) {
    if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
      return false;
    }
  }
  return true;
}

class Tokens {
 public:
  explicit Tokens(auth::SigningKey key)
      : issuer_(std::move(key), std::string(auth::kDevelopmentIssuer)) {}
  absl::StatusOr<std::string> Mint(const std::string& subject, auth::Role role) const {
    const absl::Time now = absl::Now();
    return auth::MintAccessToken(issuer_, {subject, role, now + absl::Hours(4)}, now);
  }

 private:
  auth::TokenSigner issuer_;
};

// A short id that keeps the ids of one run apart from earlier runs' on the
// same database.
std::string RunId() {
  return absl::StrFormat("%x%x", static_cast<uint32_t>(absl::ToUnixMicros(absl::Now())),
                         static_cast<uint32_t>(getpid()));
}

// Runs `n` calls with at most `parallel` in flight; returns the first error.
grpc::Status RunBatch(int n, int parallel,
                      const std::function<void(int, std::function<void(grpc::Status)>)>& call) {
  absl::Mutex mu;
  int next = 0, running = 0, finished = 0;
  grpc::Status first_error;
  std::function<void()> pump;
  pump = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    while (running < parallel && next < n) {
      const int i = next++;
      ++running;
      mu.Unlock();
      call(i, [&](grpc::Status status) {
        absl::MutexLock lock(&mu);
        --running;
        ++finished;
        if (!status.ok() && first_error.ok()) first_error = status;
        pump();
      });
      mu.Lock();
    }
  };
  absl::MutexLock lock(&mu);
  pump();
  auto all_done = [&]() { return finished == n; };
  mu.Await(absl::Condition(&all_done));
  return first_error;
}

// ---- sessions ----

struct BenchSession {
  std::string id;
  std::string customer_token;
  std::atomic<int64_t> next_message{0};
};

// Creates `n` EMAIL sessions, each for its own customer.
absl::Status CreateSessions(const Config& config, const Tokens& tokens,
                            const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                            const std::string& prefix, int n,
                            std::vector<std::unique_ptr<BenchSession>>* out) {
  out->clear();
  for (int i = 0; i < n; ++i) {
    auto session = std::make_unique<BenchSession>();
    absl::StatusOr<std::string> token =
        tokens.Mint(absl::StrCat(prefix, "-c", i), auth::Role::kCustomer);
    if (!token.ok()) return token.status();
    session->customer_token = *token;
    out->push_back(std::move(session));
  }
  std::vector<std::unique_ptr<sv1::SessionsService::Stub>> stubs;
  for (const auto& channel : channels) stubs.push_back(sv1::SessionsService::NewStub(channel));
  struct Call {
    grpc::ClientContext context;
    sv1::CreateSessionRequest request;
    sv1::CreateSessionResponse response;
  };
  grpc::Status status = RunBatch(n, 64, [&](int i, std::function<void(grpc::Status)> done) {
    auto* call = new Call;
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + config.deadline));
    auth::AttachToken(call->context, (*out)[i]->customer_token);
    call->request.set_customer_id(absl::StrCat(prefix, "-c", i));
    call->request.set_channel(common::v1::CHANNEL_EMAIL);
    call->request.set_category(common::v1::CATEGORY_GENERAL);
    call->request.set_language("en");
    call->request.set_subject("load test");
    call->request.mutable_first_message()->set_text("hello");
    call->request.set_request_id(absl::StrCat(prefix, "-create-", i));
    stubs[i % stubs.size()]->async()->CreateSession(
        &call->context, &call->request, &call->response,
        [call, i, out, done](grpc::Status s) {
          if (s.ok()) (*out)[i]->id = call->response.session().session_id();
          delete call;
          done(s);
        });
  });
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("CreateSession: ", status.error_message()));
  }
  return absl::OkStatus();
}

// What every StreamSessionEvents stream of a run shares.
struct StreamStats {
  std::atomic<int64_t> caught_up{0};
  std::atomic<int64_t> ended{0};
  std::array<std::atomic<int64_t>, 17> end_codes{};
  // The first stream to end with an error other than its cancellation at
  // the end prints it (the codes alone do not say why).
  std::atomic<bool> error_printed{false};
  // Send-to-receive latency of messages whose text carries "t=<ns>", for
  // sends scheduled at or after record_from (none until the window opens).
  std::atomic<int64_t> record_from{std::numeric_limits<int64_t>::max()};
  Histogram delivery;
};

class EventStream final : public grpc::ClientReadReactor<StreamResponse> {
 public:
  EventStream(StreamStats* stats, sv1::SessionsService::Stub* stub,
              const std::string& session_id, const std::string& token)
      : stats_(stats) {
    auth::AttachToken(context_, token);
    request_.set_session_id(session_id);
    stub->async()->StreamSessionEvents(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (response_.has_caught_up()) {
      stats_->caught_up.fetch_add(1);
    } else if (response_.has_event() && response_.event().has_message()) {
      const std::string& text = response_.event().message().text();
      int64_t sent = 0;
      if (absl::StartsWith(text, "t=") && absl::SimpleAtoi(text.substr(2), &sent) &&
          sent >= stats_->record_from.load(std::memory_order_relaxed)) {
        stats_->delivery.Record(NowNanos() - sent);
      }
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    stats_->end_codes[std::clamp<int>(status.error_code(), 0, 16)].fetch_add(1);
    if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED &&
        !stats_->error_printed.exchange(true)) {
      std::fprintf(stderr, "loadgen: a stream ended: %d %s\n", status.error_code(),
                   status.error_message().c_str());
    }
    absl::MutexLock lock(&mu_);
    done_ = true;
    stats_->ended.fetch_add(1);
  }

  void Cancel() { context_.TryCancel(); }
  bool done() {
    absl::MutexLock lock(&mu_);
    return done_;
  }

 private:
  StreamStats* stats_;
  grpc::ClientContext context_;
  sv1::StreamSessionEventsRequest request_;
  StreamResponse response_;
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// Opens `count` streams spread over `sessions` and `channels`; waits until
// each has caught up (or ended, or the timeout passed).
bool OpenStreams(int count, const std::vector<std::unique_ptr<BenchSession>>& sessions,
                 const std::vector<std::unique_ptr<sv1::SessionsService::Stub>>& stubs,
                 const std::string& token, absl::Duration timeout, StreamStats* stats,
                 std::vector<std::unique_ptr<EventStream>>* streams) {
  for (int i = 0; i < count; ++i) {
    streams->push_back(std::make_unique<EventStream>(
        stats, stubs[i % stubs.size()].get(), sessions[i % sessions.size()]->id, token));
  }
  const absl::Time give_up = absl::Now() + timeout;
  int64_t last_report = 0;
  while (stats->caught_up.load() + stats->ended.load() < static_cast<int64_t>(streams->size())) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(50));
    const int64_t up = stats->caught_up.load();
    if (up - last_report >= 10000) {
      std::fprintf(stderr, "loadgen: %lld of %d streams caught up\n",
                   static_cast<long long>(up), count);
      last_report = up;
    }
  }
  return stats->ended.load() == 0;
}

void CloseStreams(std::vector<std::unique_ptr<EventStream>>* streams) {
  for (auto& s : *streams) s->Cancel();
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  for (auto& s : *streams) {
    while (!s->done() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  }
  // Streams that did not finish are leaked on purpose: deleting a reactor
  // gRPC still uses would crash the report.
  for (auto& s : *streams) {
    if (!s->done()) s.release();
  }
  streams->clear();
}

int Run(int argc, char** argv) {
  Config config;
  config::FlagSet flags("loadgen");
  flags.Add("scenario", &config.scenario, "echo, send_message or fanout");
  flags.Add("target", &config.target,
            "server host:port, or several comma-separated (the channels go to them in turn)");
  flags.Add("stream_target", &config.stream_target,
            "fanout: host:port the subscribers' streams dial (default: --target), e.g. a "
            "standby that forwards them to the leader at --target");
  client::AddClientTlsFlags(flags, &config.tls, "");
  flags.Add("channels", &config.channels, "gRPC channels (TCP connections) to spread calls over");
  flags.Add("mode", &config.mode, "closed (concurrency callers) or open (rate calls/s)");
  flags.Add("concurrency", &config.concurrency, "closed loop: concurrent callers");
  flags.Add("rate", &config.rate, "open loop: calls started per second");
  flags.Add("warmup", &config.warmup, "calls started before this are not measured");
  flags.Add("duration", &config.duration, "measured window (unless --requests)");
  flags.Add("requests", &config.requests, "above 0: measure this many calls instead");
  flags.Add("deadline", &config.deadline, "deadline of every call");
  flags.Add("keys_dir", &config.keys_dir,
            "the servers' development key folder: the load generator mints its own access "
            "tokens with its development-issuer.pem");
  flags.Add("payload_bytes", &config.payload_bytes, "echo payload / message text size");
  flags.Add("sessions", &config.sessions, "send_message/fanout: sessions to write to");
  flags.Add("subscribers", &config.subscribers, "fanout: streams per session");
  flags.Add("hold_streams", &config.hold_streams, "idle streams held during the load");
  flags.Add("hold_sessions", &config.hold_sessions, "sessions the idle streams watch");
  flags.Add("stream_timeout", &config.stream_timeout, "how long streams may take to catch up");
  flags.Add("server_pid", &config.server_pid,
            "the server's pid, for CPU time and RSS; several comma-separated are summed");
  flags.Add("stream_server_pid", &config.stream_server_pid,
            "fanout: the pid of the process at --stream_target, for its CPU time");
  flags.Add("label", &config.label, "a name for this run in the JSON");
  flags.Add("json_out", &config.json_out, "also write the JSON result to this file");
  flags.Add("window_marker", &config.window_marker,
            "create this file when the measured window opens (for tools that "
            "sample the server over the same window, e.g. perf)");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "loadgen: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  std::vector<int> server_pids;
  for (absl::string_view pid : absl::StrSplit(config.server_pid, ',', absl::SkipEmpty())) {
    int parsed = 0;
    if (!absl::SimpleAtoi(pid, &parsed) || parsed <= 0) {
      std::fprintf(stderr, "loadgen: --server_pid: \"%s\" is not a process id\n",
                   std::string(pid).c_str());
      return 2;
    }
    server_pids.push_back(parsed);
  }
  if (config.target.find_first_not_of(", ") == std::string::npos) {
    std::fprintf(stderr, "loadgen: --target is empty\n");
    return 2;
  }
  const bool echo = config.scenario == "echo";
  const bool fanout = config.scenario == "fanout";
  if (!echo && !fanout && config.scenario != "send_message") {
    std::fprintf(stderr, "loadgen: --scenario must be echo, send_message or fanout\n");
    return 2;
  }
  if (config.mode != "closed" && config.mode != "open") {
    std::fprintf(stderr, "loadgen: --mode must be closed or open\n");
    return 2;
  }
  if (config.channels < 1 || config.concurrency < 1 || config.rate < 1 ||
      config.payload_bytes < 1 || config.sessions < 1 || config.subscribers < 0 ||
      config.hold_streams < 0 || config.hold_sessions < 1) {
    std::fprintf(stderr, "loadgen: counts, sizes and rates must be at least 1\n");
    return 2;
  }
  if ((!echo || config.hold_streams > 0) && config.keys_dir.empty()) {
    std::fprintf(stderr, "loadgen: sessions scenarios need --keys_dir\n");
    return 2;
  }
  std::unique_ptr<Tokens> tokens;
  if (!config.keys_dir.empty()) {
    absl::StatusOr<auth::SigningKey> key =
        auth::ReadSigningKeyFile(absl::StrCat(config.keys_dir, "/", auth::kIssuerKeyFile));
    if (!key.ok()) {
      std::fprintf(stderr, "loadgen: %s\n", key.status().ToString().c_str());
      return 1;
    }
    tokens = std::make_unique<Tokens>(*std::move(key));
  }
  auto fail = [](absl::string_view what, const absl::Status& s) {
    std::fprintf(stderr, "loadgen: %s: %s\n", std::string(what).c_str(), s.ToString().c_str());
    return 1;
  };

  absl::StatusOr<client::ChannelSecurity> security =
      client::ChannelSecurity::Create(config.tls, "");
  if (!security.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", std::string(security.status().message()).c_str());
    return 2;
  }
  const std::vector<std::shared_ptr<grpc::Channel>> channels =
      MakeChannels(config, config.target, *security);
  if (!WaitForConnected(channels)) return fail("connect", absl::UnavailableError(config.target));
  std::vector<std::unique_ptr<bench::v1::EchoService::Stub>> echo_stubs;
  std::vector<std::unique_ptr<sv1::SessionsService::Stub>> session_stubs;
  for (const auto& channel : channels) {
    echo_stubs.push_back(bench::v1::EchoService::NewStub(channel));
    session_stubs.push_back(sv1::SessionsService::NewStub(channel));
  }
  std::vector<std::unique_ptr<sv1::SessionsService::Stub>> stream_stubs;
  if (fanout && !config.stream_target.empty()) {
    const std::vector<std::shared_ptr<grpc::Channel>> stream_channels =
        MakeChannels(config, config.stream_target, *security);
    if (!WaitForConnected(stream_channels)) {
      return fail("connect", absl::UnavailableError(config.stream_target));
    }
    for (const auto& channel : stream_channels) {
      stream_stubs.push_back(sv1::SessionsService::NewStub(channel));
    }
  }
  const std::string run_id = RunId();
  const absl::Time setup_start = absl::Now();

  std::string echo_token;
  std::string supervisor_token;
  if (tokens != nullptr) {
    absl::StatusOr<std::string> t = tokens->Mint("loadgen", auth::Role::kSupervisor);
    if (!t.ok()) return fail("mint", t.status());
    echo_token = *t;
    t = tokens->Mint("loadgen-supervisor", auth::Role::kSupervisor);
    if (!t.ok()) return fail("mint", t.status());
    supervisor_token = *t;
  }

  // Idle streams, held through the load.
  const ProcSample before_hold = SampleProcesses(server_pids);
  StreamStats hold_stats;
  std::vector<std::unique_ptr<EventStream>> held;
  std::vector<std::unique_ptr<BenchSession>> hold_sessions;
  ProcSample after_hold;
  bool hold_ok = true;
  if (config.hold_streams > 0) {
    const int n = std::min(config.hold_sessions, config.hold_streams);
    if (absl::Status s = CreateSessions(config, *tokens, channels, run_id + "-idle", n,
                                        &hold_sessions);
        !s.ok()) {
      return fail("idle sessions", s);
    }
    hold_ok = OpenStreams(config.hold_streams, hold_sessions, session_stubs, supervisor_token,
                          config.stream_timeout, &hold_stats, &held);
    absl::SleepFor(absl::Seconds(1));  // let the server settle its buffers
    after_hold = SampleProcesses(server_pids);
    std::fprintf(stderr, "loadgen: %lld idle streams caught up, %lld ended\n",
                 static_cast<long long>(hold_stats.caught_up.load()),
                 static_cast<long long>(hold_stats.ended.load()));
  }

  // The scenario's sessions and subscribers.
  std::vector<std::unique_ptr<BenchSession>> sessions;
  StreamStats fan_stats;
  std::vector<std::unique_ptr<EventStream>> subscribers;
  bool subscribers_ok = true;
  if (!echo) {
    if (absl::Status s =
            CreateSessions(config, *tokens, channels, run_id, config.sessions, &sessions);
        !s.ok()) {
      return fail("sessions", s);
    }
    if (fanout && config.subscribers > 0) {
      subscribers_ok = OpenStreams(config.sessions * config.subscribers, sessions,
                                   stream_stubs.empty() ? session_stubs : stream_stubs,
                                   supervisor_token, config.stream_timeout, &fan_stats,
                                   &subscribers);
    }
  }
  const double setup_seconds = absl::ToDoubleSeconds(absl::Now() - setup_start);

  const std::string payload(config.payload_bytes, 'x');
  std::atomic<int64_t> message_counter{0};
  StartCall start;
  if (echo) {
    struct Call {
      grpc::ClientContext context;
      bench::v1::EchoRequest request;
      bench::v1::EchoResponse response;
    };
    start = [&](int caller, int64_t, std::function<void(int)> done) {
      auto* call = new Call;
      call->context.set_deadline(absl::ToChronoTime(absl::Now() + config.deadline));
      if (!echo_token.empty()) auth::AttachToken(call->context, echo_token);
      call->request.set_payload(payload);
      echo_stubs[caller % echo_stubs.size()]->async()->Echo(
          &call->context, &call->request, &call->response, [call, done](grpc::Status s) {
            delete call;
            done(s.error_code());
          });
    };
  } else {
    struct Call {
      grpc::ClientContext context;
      sv1::SendMessageRequest request;
      sv1::SendMessageResponse response;
    };
    start = [&](int caller, int64_t scheduled, std::function<void(int)> done) {
      const int64_t n = message_counter.fetch_add(1);
      BenchSession& session = *sessions[n % sessions.size()];
      auto* call = new Call;
      call->context.set_deadline(absl::ToChronoTime(absl::Now() + config.deadline));
      auth::AttachToken(call->context, session.customer_token);
      call->request.set_session_id(session.id);
      call->request.set_client_message_id(absl::StrCat("m", session.next_message.fetch_add(1)));
      call->request.mutable_message()->set_text(fanout ? absl::StrCat("t=", scheduled)
                                                       : payload);
      session_stubs[caller % session_stubs.size()]->async()->SendMessage(
          &call->context, &call->request, &call->response, [call, done](grpc::Status s) {
            delete call;
            done(s.error_code());
          });
    };
  }

  LoadOptions options;
  options.mode = config.mode == "open" ? LoadOptions::Mode::kOpen : LoadOptions::Mode::kClosed;
  options.concurrency = config.concurrency;
  options.rate = config.rate;
  options.warmup = config.warmup;
  options.duration = config.duration;
  options.requests = config.requests;
  options.drain_timeout = config.deadline + absl::Seconds(5);
  ProcSample window_start, window_end, stream_window_start, stream_window_end;
  LoadResult result;
  RunLoad(
      options, start,
      [&] {
        window_start = SampleProcesses(server_pids);
        stream_window_start = SampleProcess(config.stream_server_pid);
        fan_stats.record_from = NowNanos();
        if (!config.window_marker.empty()) std::ofstream(config.window_marker) << "open\n";
      },
      [&] {
        window_end = SampleProcesses(server_pids);
        stream_window_end = SampleProcess(config.stream_server_pid);
      },
      &result);
  if (fanout) absl::SleepFor(absl::Milliseconds(500));  // the last deliveries

  // ---- report ----
  const double server_cpu = window_start.cpu_seconds >= 0 && window_end.cpu_seconds >= 0
                                ? window_end.cpu_seconds - window_start.cpu_seconds
                                : -1;
  const double cpu_us_per_request =
      server_cpu >= 0 && result.ok > 0 ? server_cpu * 1e6 / result.ok : -1;
  std::string json = absl::StrFormat(
      "{\"label\":\"%s\",\"scenario\":\"%s\",\"target\":\"%s\",\"mode\":\"%s\","
      "\"channels\":%d,\"concurrency\":%d,\"rate\":%d,\"payload_bytes\":%d,"
      "\"seconds\":%.3f,\"setup_seconds\":%.2f,\"ok\":%d,\"failed\":%d,\"not_drained\":%d,"
      "\"qps\":%.1f,\"errors\":%s,\"latency\":%s",
      config.label, config.scenario, config.target, config.mode, config.channels,
      config.concurrency, config.rate, config.payload_bytes, result.measured_seconds,
      setup_seconds, result.ok, result.failed, result.not_drained, result.qps(),
      CodesJson(result.codes, true), LatencyJson(result.latency));
  if (!echo) absl::StrAppend(&json, ",\"sessions\":", config.sessions);
  absl::StrAppendFormat(&json,
                        ",\"server\":{\"pid\":%d,\"processes\":%d,\"cpu_seconds\":%.3f,"
                        "\"cpu_us_per_request\":%.2f,\"rss_kib\":%d}",
                        server_pids.empty() ? 0 : server_pids.front(), server_pids.size(),
                        server_cpu, cpu_us_per_request, window_end.rss_kib);
  if (fanout) {
    absl::StrAppendFormat(
        &json,
        ",\"fanout\":{\"subscribers_per_session\":%d,\"stream_target\":\"%s\",\"streams\":%d,"
        "\"all_caught_up\":%s,\"expected_deliveries\":%d,\"stream_ends\":%s,\"delivery\":%s",
        config.subscribers, config.stream_target.empty() ? config.target : config.stream_target,
        subscribers.size(), subscribers_ok ? "true" : "false",
        result.ok * config.subscribers, CodesJson(fan_stats.end_codes, false),
        LatencyJson(fan_stats.delivery));
    if (config.stream_server_pid > 0) {
      const double stream_cpu =
          stream_window_start.cpu_seconds >= 0 && stream_window_end.cpu_seconds >= 0
              ? stream_window_end.cpu_seconds - stream_window_start.cpu_seconds
              : -1;
      const int64_t deliveries = fan_stats.delivery.count();
      absl::StrAppendFormat(&json,
                            ",\"stream_server\":{\"pid\":%d,\"cpu_seconds\":%.3f,"
                            "\"cpu_us_per_delivery\":%.2f,\"rss_kib\":%d}",
                            config.stream_server_pid, stream_cpu,
                            stream_cpu >= 0 && deliveries > 0 ? stream_cpu * 1e6 / deliveries : -1,
                            stream_window_end.rss_kib);
    }
    json += "}";
  }
  if (config.hold_streams > 0) {
    const double per_stream_kib =
        before_hold.rss_kib >= 0 && after_hold.rss_kib >= 0
            ? static_cast<double>(after_hold.rss_kib - before_hold.rss_kib) / config.hold_streams
            : -1;
    absl::StrAppendFormat(
        &json,
        ",\"hold\":{\"streams\":%d,\"sessions\":%d,\"caught_up\":%d,\"all_caught_up\":%s,"
        "\"rss_kib_before\":%d,\"rss_kib_held\":%d,\"kib_per_stream\":%.2f,"
        "\"still_open_after_load\":%d,\"stream_ends\":%s}",
        config.hold_streams, hold_sessions.size(), hold_stats.caught_up.load(),
        hold_ok ? "true" : "false", before_hold.rss_kib, after_hold.rss_kib, per_stream_kib,
        config.hold_streams - hold_stats.ended.load(), CodesJson(hold_stats.end_codes, false));
  }
  json += "}";

  std::printf("%s %s (%s loop, %d channels, %s): %.0f calls/s ok, %lld ok, %lld failed %s\n",
              config.scenario.c_str(), config.target.c_str(), config.mode.c_str(),
              config.channels,
              options.mode == LoadOptions::Mode::kOpen
                  ? absl::StrCat(config.rate, "/s offered").c_str()
                  : absl::StrCat(config.concurrency, " callers").c_str(),
              result.qps(), static_cast<long long>(result.ok),
              static_cast<long long>(result.failed), CodesJson(result.codes, true).c_str());
  std::printf("  latency  %s\n", LatencyLine(result.latency).c_str());
  if (fanout) std::printf("  delivery %s\n", LatencyLine(fan_stats.delivery).c_str());
  if (cpu_us_per_request >= 0) {
    std::printf("  server   %.1f us CPU per call, RSS %lld KiB\n", cpu_us_per_request,
                static_cast<long long>(window_end.rss_kib));
  }
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
  if (!config.json_out.empty()) {
    std::ofstream out(config.json_out);
    out << json << "\n";
  }

  CloseStreams(&subscribers);
  CloseStreams(&held);
  const bool healthy = result.ok > 0 && result.not_drained == 0 && hold_ok && subscribers_ok;
  return healthy ? 0 : 1;
}

}  // namespace
}  // namespace switchboard::loadgen

int main(int argc, char** argv) {
  // As the servers run (libs/server): Debian's Abseil has the mutex deadlock
  // detector on, a global graph update on every lock, which would load the
  // instrument instead of the platform.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return switchboard::loadgen::Run(argc, argv);
}
