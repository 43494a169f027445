// Sessions under abuse: a real sessions process with a saturated worker
// pool (4 threads) and a bot slower than its deadline receives 50,000 calls
// without deadlines from a handful of abusive customers (messages that wake
// the bot, lists, reads, all at once). Meanwhile other customers keep using
// the service at a human pace. Their calls must keep succeeding with
// bounded latency, health must stay SERVING, memory must stay bounded,
// nothing may crash, and every refused call must be RESOURCE_EXHAUSTED with
// a `retry-after` trailer.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <dirent.h>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/bot/v1/bot_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard {
namespace {

using sessions::v1::SessionsService;
namespace sv1 = ::switchboard::sessions::v1;

constexpr char kBinary[] = "services/sessions/sessions_server";
constexpr int kFloodCalls = 50'000;
constexpr int kOutstanding = 500;
constexpr int kAbusers = 10;
constexpr int kPoliteCustomers = 8;

// A bot that takes 3 s to answer, three times sessions' bot deadline.
class SlowBot : public bot::v1::BotService::CallbackService {
 public:
  ~SlowBot() override { Join(); }
  grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                   const bot::v1::AnswerRequest* request,
                                   bot::v1::AnswerResponse* response) override {
    auto* reactor = context->DefaultReactor();
    response->set_outcome(bot::v1::ANSWER_OUTCOME_ANSWERED);
    response->set_reply_text("bot: " + request->text());
    absl::MutexLock lock(&mu_);
    ++calls_;
    threads_.emplace_back([this, reactor] {
      stop_.WaitForNotificationWithTimeout(absl::Seconds(3));
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  void Join() {
    std::vector<std::thread> threads;
    {
      absl::MutexLock lock(&mu_);
      if (!stop_.HasBeenNotified()) stop_.Notify();
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Mutex mu_;
  absl::Notification stop_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// The pid of the process whose command line holds `needle`.
int FindPid(const std::string& needle) {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  int found = -1;
  while (dirent* entry = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::ifstream cmdline(absl::StrCat("/proc/", pid, "/cmdline"));
    std::string text((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (absl::StrContains(text, needle) && absl::StrContains(text, "sessions_server")) {
      found = pid;
      break;
    }
  }
  closedir(proc);
  return found;
}

int64_t RssKib(int pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (!absl::StartsWith(line, "VmRSS:")) continue;
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    int64_t kib = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kib)) return kib;
  }
  return -1;
}

// What the flood's answers were.
class Tally {
 public:
  void Record(const grpc::Status& status, const grpc::ClientContext& context) {
    absl::MutexLock lock(&mu_);
    ++codes_[status.error_code()];
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
        context.GetServerTrailingMetadata().count("retry-after") == 0) {
      ++exhausted_without_retry_after_;
      if (example_.empty()) example_ = status.error_message();
    }
    if (status.error_code() != grpc::StatusCode::OK &&
        status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED &&
        unexpected_.size() < 5) {
      unexpected_.push_back(absl::StrCat(status.error_code(), ": ", status.error_message()));
    }
  }
  std::map<grpc::StatusCode, int> codes() {
    absl::MutexLock lock(&mu_);
    return codes_;
  }
  int exhausted_without_retry_after() {
    absl::MutexLock lock(&mu_);
    return exhausted_without_retry_after_;
  }
  std::string example() {
    absl::MutexLock lock(&mu_);
    return example_;
  }
  std::vector<std::string> unexpected() {
    absl::MutexLock lock(&mu_);
    return unexpected_;
  }

 private:
  absl::Mutex mu_;
  std::map<grpc::StatusCode, int> codes_ ABSL_GUARDED_BY(mu_);
  int exhausted_without_retry_after_ ABSL_GUARDED_BY(mu_) = 0;
  std::string example_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> unexpected_ ABSL_GUARDED_BY(mu_);
};

class OverloadTest : public ::testing::Test {
 protected:
  OverloadTest() : data_dir_(storage::MakeTempDir()) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &bot_port_);
    builder.RegisterService(&bot_);
    bot_server_ = builder.BuildAndStart();
  }
  ~OverloadTest() override {
    server_.reset();
    bot_.Join();
    bot_server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  }

  std::string Token(const std::string& customer) {
    // The server made the development keys in its data folder.
    return testing::TestTokens::FromFolder(data_dir_ + "/keys", "sessions")
        .For(auth::Role::kCustomer, customer);
  }

  std::string NewChat(SessionsService::Stub& stub, const std::string& token) {
    sv1::CreateSessionRequest request;
    request.set_channel(common::v1::CHANNEL_CHAT);
    sv1::CreateSessionResponse response;
    grpc::ClientContext context;
    auth::AttachToken(context, token);
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    grpc::Status status = stub.CreateSession(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.session().session_id();
  }

  std::string data_dir_;
  SlowBot bot_;
  int bot_port_ = 0;
  std::unique_ptr<grpc::Server> bot_server_;
  std::unique_ptr<testing::ServerProcess> server_;
};

TEST_F(OverloadTest, OthersKeepBeingServedWhileAFewFloodTheServer) {
  server_ = std::make_unique<testing::ServerProcess>(
      kBinary,
      std::vector<std::string>{"--data_dir=" + data_dir_, "--port=0", "--metrics_port=0",
                               "--bind_address=127.0.0.1", "--drain_deadline=2s",
                               absl::StrCat("--bot_address=127.0.0.1:", bot_port_),
                               "--bot_deadline=1s", "--bot_threads=2", "--bot_queue=4",
                               "--routing_address=127.0.0.1:1", "--routing_timeout=200ms",
                               "--worker_threads=4", "--max_queued_calls=64",
                               "--max_calls_per_user=4"},
      data_dir_ + "/sessions.log");
  ASSERT_GT(server_->grpc_port(), 0) << server_->log();
  const int pid = FindPid(data_dir_);
  ASSERT_GT(pid, 0);
  const int64_t rss_at_start = RssKib(pid);

  auto channel = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
  auto stub = SessionsService::NewStub(channel);

  // The abusers' sessions, and the polite customers'.
  struct Customer {
    std::string token;
    std::string session_id;
  };
  std::vector<Customer> abusers;
  for (int i = 0; i < kAbusers; ++i) {
    Customer c{Token(absl::StrCat("abuser-", i)), ""};
    c.session_id = NewChat(*stub, c.token);
    abusers.push_back(std::move(c));
  }
  std::vector<Customer> polite;
  for (int i = 0; i < kPoliteCustomers; ++i) {
    Customer c{Token(absl::StrCat("polite-", i)), ""};
    c.session_id = NewChat(*stub, c.token);
    polite.push_back(std::move(c));
  }

  std::atomic<bool> flooding{true};

  // Health, and the server's memory, watched throughout.
  std::atomic<int> health_checks{0};
  std::atomic<int> not_serving{0};
  std::atomic<int64_t> rss_max{rss_at_start};
  std::thread watcher([&] {
    auto health_channel =
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    auto health = grpc::health::v1::Health::NewStub(health_channel);
    while (flooding.load()) {
      grpc::health::v1::HealthCheckRequest request;
      grpc::health::v1::HealthCheckResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
      grpc::Status status = health->Check(&context, request, &response);
      ++health_checks;
      if (!status.ok() ||
          response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
        ++not_serving;
      }
      int64_t rss = RssKib(pid);
      int64_t seen = rss_max.load();
      while (rss > seen && !rss_max.compare_exchange_weak(seen, rss)) {
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  });

  // The polite customers: one read and one message every 250 ms each, with
  // deadlines, as an app would.
  absl::Mutex polite_mu;
  std::vector<absl::Duration> polite_latencies;
  int polite_failures = 0;
  std::vector<std::string> polite_errors;
  std::vector<std::thread> polite_threads;
  for (int i = 0; i < kPoliteCustomers; ++i) {
    polite_threads.emplace_back([&, i] {
      auto own = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
      auto own_stub = SessionsService::NewStub(own);
      for (int n = 0; flooding.load(); ++n) {
        for (int call = 0; call < 2; ++call) {
          grpc::ClientContext context;
          auth::AttachToken(context, polite[i].token);
          context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
          const absl::Time start = absl::Now();
          grpc::Status status;
          if (call == 0) {
            sv1::GetSessionRequest request;
            request.set_session_id(polite[i].session_id);
            sv1::GetSessionResponse response;
            status = own_stub->GetSession(&context, request, &response);
          } else {
            sv1::SendMessageRequest request;
            request.set_session_id(polite[i].session_id);
            request.set_client_message_id(absl::StrCat("p-", n));
            request.mutable_message()->set_text("is anyone there?");
            sv1::SendMessageResponse response;
            status = own_stub->SendMessage(&context, request, &response);
          }
          absl::MutexLock lock(&polite_mu);
          polite_latencies.push_back(absl::Now() - start);
          if (!status.ok()) {
            ++polite_failures;
            if (polite_errors.size() < 5) {
              polite_errors.push_back(
                  absl::StrCat(status.error_code(), ": ", status.error_message()));
            }
          }
        }
        absl::SleepFor(absl::Milliseconds(250));
      }
    });
  }

  // The flood: 50,000 calls without deadlines, kOutstanding at a time.
  Tally tally;
  absl::Mutex flood_mu;
  int outstanding = 0;
  std::vector<std::shared_ptr<grpc::Channel>> flood_channels;
  std::vector<std::unique_ptr<SessionsService::Stub>> flood_stubs;
  for (int i = 0; i < 4; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);  // distinct connections
    flood_channels.push_back(grpc::CreateCustomChannel(
        server_->address(), grpc::InsecureChannelCredentials(), args));
    flood_stubs.push_back(SessionsService::NewStub(flood_channels.back()));
  }
  const absl::Time flood_start = absl::Now();
  for (int n = 0; n < kFloodCalls; ++n) {
    {
      absl::MutexLock lock(&flood_mu);
      flood_mu.Await(absl::Condition(
          +[](int* o) { return *o < kOutstanding; }, &outstanding));
      ++outstanding;
    }
    const Customer& abuser = abusers[n % kAbusers];
    SessionsService::Stub& flood = *flood_stubs[n % flood_stubs.size()];
    auto done = [&](grpc::ClientContext* context, const grpc::Status& status) {
      tally.Record(status, *context);
      absl::MutexLock lock(&flood_mu);
      --outstanding;
    };
    const int kind = n % 10;
    if (kind < 6) {
      {
        struct Call {
          grpc::ClientContext context;
          sv1::SendMessageRequest request;
          sv1::SendMessageResponse response;
        };
        auto* c = new Call;
        auth::AttachToken(c->context, abuser.token);
        c->request.set_session_id(abuser.session_id);
        c->request.set_client_message_id(absl::StrCat("f-", n));
        c->request.mutable_message()->set_text(absl::StrCat("spam ", n));
        flood.async()->SendMessage(&c->context, &c->request, &c->response,
                                   [c, done](grpc::Status s) {
                                     done(&c->context, s);
                                     delete c;
                                   });
      }
    } else if (kind < 8) {
      {
        struct Call {
          grpc::ClientContext context;
          sv1::ListSessionsRequest request;
          sv1::ListSessionsResponse response;
        };
        auto* c = new Call;
        auth::AttachToken(c->context, abuser.token);
        flood.async()->ListSessions(&c->context, &c->request, &c->response,
                                    [c, done](grpc::Status s) {
                                      done(&c->context, s);
                                      delete c;
                                    });
      }
    } else if (kind == 8) {
      {
        struct Call {
          grpc::ClientContext context;
          sv1::ListMessagesRequest request;
          sv1::ListMessagesResponse response;
        };
        auto* c = new Call;
        auth::AttachToken(c->context, abuser.token);
        c->request.set_session_id(abuser.session_id);
        flood.async()->ListMessages(&c->context, &c->request, &c->response,
                                    [c, done](grpc::Status s) {
                                      done(&c->context, s);
                                      delete c;
                                    });
      }
    } else {
      {
        struct Call {
          grpc::ClientContext context;
          sv1::GetSessionRequest request;
          sv1::GetSessionResponse response;
        };
        auto* c = new Call;
        auth::AttachToken(c->context, abuser.token);
        c->request.set_session_id(abuser.session_id);
        flood.async()->GetSession(&c->context, &c->request, &c->response,
                                  [c, done](grpc::Status s) {
                                    done(&c->context, s);
                                    delete c;
                                  });
      }
    }
  }
  {
    absl::MutexLock lock(&flood_mu);
    ASSERT_TRUE(flood_mu.AwaitWithTimeout(
        absl::Condition(+[](int* o) { return *o == 0; }, &outstanding), absl::Seconds(60)))
        << "flood calls still unanswered";
  }
  const absl::Duration flood_time = absl::Now() - flood_start;
  flooding = false;
  for (std::thread& t : polite_threads) t.join();
  watcher.join();

  std::map<grpc::StatusCode, int> codes = tally.codes();
  std::sort(polite_latencies.begin(), polite_latencies.end());
  const absl::Duration p99 =
      polite_latencies.empty()
          ? absl::ZeroDuration()
          : polite_latencies[std::min(polite_latencies.size() - 1,
                                      polite_latencies.size() * 99 / 100)];
  std::printf(
      "overload: %d flood calls in %.1f s: %d OK, %d RESOURCE_EXHAUSTED, %d other; "
      "polite calls %zu, failed %d, p99 %.1f ms; bot asked %d times; health checks %d; "
      "server RSS %lld KiB at start, %lld KiB max\n",
      kFloodCalls, absl::ToDoubleSeconds(flood_time), codes[grpc::StatusCode::OK],
      codes[grpc::StatusCode::RESOURCE_EXHAUSTED],
      kFloodCalls - codes[grpc::StatusCode::OK] - codes[grpc::StatusCode::RESOURCE_EXHAUSTED],
      polite_latencies.size(), polite_failures, absl::ToDoubleMilliseconds(p99), bot_.calls(),
      health_checks.load(), static_cast<long long>(rss_at_start),
      static_cast<long long>(rss_max.load()));

  // The flood was refused, cleanly: RESOURCE_EXHAUSTED with a retry-after.
  EXPECT_GT(codes[grpc::StatusCode::RESOURCE_EXHAUSTED], kFloodCalls / 2);
  EXPECT_GT(codes[grpc::StatusCode::OK], 0);
  EXPECT_EQ(tally.exhausted_without_retry_after(), 0) << tally.example();
  EXPECT_TRUE(tally.unexpected().empty()) << tally.unexpected()[0];
  // Everyone else was served, in bounded time (a generous bound: the
  // figure above is the measure).
  EXPECT_GT(polite_latencies.size(), 0u);
  EXPECT_EQ(polite_failures, 0) << (polite_errors.empty() ? "" : polite_errors[0]);
  EXPECT_LT(p99, absl::Seconds(5));
  // Healthy, bounded, alive; and it drains cleanly.
  EXPECT_GT(health_checks.load(), 0);
  EXPECT_EQ(not_serving.load(), 0);
  EXPECT_LT(rss_max.load(), 1024 * 1024) << "KiB";
  EXPECT_EQ(server_->Terminate(absl::Seconds(20)), 0) << server_->log();
}

}  // namespace
}  // namespace switchboard
