// Issue 15, P8: a support floor on one node. Starts the platform's processes
// as journey_benchmark does (tools/loadgen/platform.h), puts --agents agents
// ONLINE in presence with a chat capacity of --agent_capacity, each watching
// their offers (routing.WatchOffers), and keeps --conversations CHAT
// conversations going at once, as in real traffic:
//
//  - A customer opens a session with a first message and keeps its
//    StreamSessionEvents stream open; they send --messages messages in all,
//    one every --send_interval_min..max (random per message).
//  - --human_percent of them ask for a human at once: the bot escalates,
//    routing offers the session to an agent, who accepts it (AcceptOffer),
//    opens the session's stream and answers each customer message after
//    --reply_delay_min..max. After answering the customer's last message the
//    agent resolves the session; the customer rates it (feedback) and leaves.
//  - The others ask the bot questions it answers; after the bot's answer to
//    their last message the customer marks the session resolved. If the bot
//    escalates one of them instead, it goes on as a human conversation.
//  - Each conversation that ends is replaced by a new one (a new customer),
//    so the concurrency stays at --conversations.
//
// Conversations start evenly over --ramp; the measured window opens --settle
// after the ramp and lasts --duration. Figures, for sends started in the
// window: send->receive latency from the SendMessage call to the message
// arriving live on the OTHER party's stream (customer->agent and
// agent->customer, and both together: the P8 figure), a customer's
// SendMessage round trip (call -> response, the durable write), the bot's turn
// (customer message -> bot answer on the customer's stream), the wait for an
// agent (escalation -> assignment, as the customer's stream shows them),
// errors by operation and gRPC code, each server process's CPU seconds and
// RSS (/proc), the machine's load average and the benchmark's own CPU time.
// Prints a summary and, last, one JSON line (label "floor").
//
//   bazel run -c opt //tools/loadgen:floor_benchmark -- [--conversations=10000]
//       [--agents=500] [--ramp=150s] [--duration=180s] [--json_out=FILE]
//
// One client process drives every participant: a few channels per service,
// each carrying thousands of streams, the callback API throughout, and one
// scheduler thread for the people's pauses (no thread per stream or person).
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "libs/auth/grpc_auth.h"
#include "libs/config/flags.h"
#include "libs/testing/runfiles.h"
#include "switchboard/feedback/v1/feedback_service.grpc.pb.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"
#include "tools/loadgen/channels.h"
#include "tools/loadgen/histogram.h"
#include "tools/loadgen/load.h"
#include "tools/loadgen/platform.h"
#include "tools/loadgen/results.h"

namespace switchboard::loadgen {
namespace {

namespace sv1 = ::switchboard::sessions::v1;
namespace rv1 = ::switchboard::routing::v1;
namespace pv1 = ::switchboard::presence::v1;
namespace fv1 = ::switchboard::feedback::v1;

struct Config {
  int conversations = 10000;
  int agents = 500;
  int agent_capacity = 20;
  int human_percent = 50;
  int messages = 5;
  absl::Duration send_interval_min = absl::Seconds(20);
  absl::Duration send_interval_max = absl::Seconds(40);
  absl::Duration reply_delay_min = absl::Seconds(1);
  absl::Duration reply_delay_max = absl::Seconds(5);
  absl::Duration ramp = absl::Seconds(150);
  absl::Duration settle = absl::Seconds(10);
  absl::Duration duration = absl::Seconds(180);
  int channels = 4;
  absl::Duration deadline = absl::Seconds(10);
  std::string json_out;
  Platform::Options platform;
};

int64_t Uniform(absl::Duration low, absl::Duration high) {
  thread_local absl::BitGen gen;
  const int64_t lo = absl::ToInt64Nanoseconds(low), hi = absl::ToInt64Nanoseconds(high);
  return hi > lo ? absl::Uniform<int64_t>(gen, lo, hi) : lo;
}

bool Chance(double p) {
  thread_local absl::BitGen gen;
  return absl::Bernoulli(gen, p);
}

// ---- message ids carry their send time ----

// client_message_id "<kind><n>-<send ns>": kind 'c' a customer message, 'x'
// the customer's last one, 'a' an agent's. The receiver computes the
// send->receive latency from it (one monotonic clock: one process sends and
// receives).
std::string MessageId(char kind, int n, int64_t sent_ns) {
  return absl::StrFormat("%c%d-%d", kind, n, sent_ns);
}

int64_t SentAt(const std::string& id) {
  const size_t dash = id.rfind('-');
  int64_t ns = 0;
  if (dash == std::string::npos || !absl::SimpleAtoi(id.substr(dash + 1), &ns)) return 0;
  return ns;
}

bool IsLast(const std::string& id) { return !id.empty() && id[0] == 'x'; }

// ---- timed actions ----

// Runs actions at given times on one thread: every pause of every simulated
// person, without a thread per person. Actions must not block (they start
// asynchronous calls).
class Scheduler {
 public:
  Scheduler() { thread_ = std::thread([this] { Loop(); }); }
  ~Scheduler() { Stop(); }

  void At(int64_t when_ns, std::function<void()> action) {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    queue_.push({when_ns, next_++, std::move(action)});
    wake_.Signal();
  }
  void After(int64_t delay_ns, std::function<void()> action) {
    At(NowNanos() + delay_ns, std::move(action));
  }

  // Drops the actions not yet run and joins the thread.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return;
      stopped_ = true;
      wake_.Signal();
    }
    thread_.join();
  }

 private:
  struct Item {
    int64_t when;
    uint64_t order;
    std::function<void()> action;
    bool operator>(const Item& other) const {
      return when != other.when ? when > other.when : order > other.order;
    }
  };

  void Loop() {
    absl::MutexLock lock(&mu_);
    while (!stopped_) {
      if (queue_.empty()) {
        wake_.Wait(&mu_);
        continue;
      }
      const int64_t wait = queue_.top().when - NowNanos();
      if (wait > 0) {
        wake_.WaitWithTimeout(&mu_, absl::Nanoseconds(wait));
        continue;
      }
      std::function<void()> action = std::move(const_cast<Item&>(queue_.top()).action);
      queue_.pop();
      mu_.Unlock();
      action();
      mu_.Lock();
    }
  }

  absl::Mutex mu_;
  absl::CondVar wake_;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// ---- what the run measures ----

// Things that happened, counted over the whole run; the report gives the
// difference between the window's two ends.
enum Count {
  kStarted,
  kCustomerMessages,
  kAgentMessages,
  kEscalated,
  kOffers,
  kAccepted,
  kBotResolved,
  kAgentResolved,
  kRated,
  kCounts
};
const char* const kCountNames[kCounts] = {
    "conversations_started", "customer_messages", "agent_messages",
    "escalations",           "offers",            "accepted",
    "resolved_by_bot",       "resolved_by_agent", "rated"};

class Stats {
 public:
  void Open(int64_t ramp_start, int64_t start, int64_t end) {
    ramp_start_ = ramp_start;
    window_start_ = start;
    window_end_ = end;
  }
  bool InWindow(int64_t ns) const { return ns >= window_start_ && ns < window_end_; }
  bool Before(int64_t ns) const { return ns < window_start_; }

  void Add(Count c) { counts_[c].fetch_add(1, std::memory_order_relaxed); }
  std::array<int64_t, kCounts> Snapshot() const {
    std::array<int64_t, kCounts> out;
    for (int i = 0; i < kCounts; ++i) out[i] = counts_[i].load();
    return out;
  }

  // A failed call or stream, by operation and code: in the window, or during
  // the ramp (before it). Failures after the window (the shutdown) are not
  // the platform's.
  void Error(const std::string& op, int code) {
    const int64_t now = NowNanos();
    if (now >= window_end_) return;
    absl::MutexLock lock(&mu_);
    auto& errors = Before(now) ? ramp_errors_ : errors_;
    ++errors[absl::StrCat(op, ":", CodeName(code))];
    if (first_error_.empty()) {
      first_error_ = absl::StrCat(op, ": ", CodeName(code));
      first_error_at_ = now;
      started_at_first_error_ = counts_[kStarted].load();
    }
  }
  // When the first error came (seconds after the ramp started) and how many
  // conversations had been started by then: where the platform broke.
  std::string FirstErrorJson() {
    absl::MutexLock lock(&mu_);
    if (first_error_.empty()) return "null";
    return absl::StrFormat("{\"error\":\"%s\",\"after_ramp_start_s\":%.1f,\"conversations_started\":%d}",
                           first_error_, (first_error_at_ - ramp_start_) / 1e9,
                           started_at_first_error_);
  }
  std::string ErrorsJson(bool ramp) {
    absl::MutexLock lock(&mu_);
    std::string out = "{";
    for (const auto& [key, n] : ramp ? ramp_errors_ : errors_) {
      absl::StrAppend(&out, out.size() > 1 ? "," : "", "\"", key, "\":", n);
    }
    return out + "}";
  }
  int64_t ErrorCount() {
    absl::MutexLock lock(&mu_);
    int64_t n = 0;
    for (const auto& [key, count] : errors_) n += count;
    return n;
  }


  Histogram to_agent;     // customer message -> the agent's stream
  Histogram to_customer;  // agent message -> the customer's stream
  Histogram delivered;    // both directions
  Histogram send_ack;     // a customer's SendMessage call -> its response
  Histogram bot_turn;     // customer message -> the bot's answer
  Histogram agent_wait;   // escalation -> assignment

 private:
  std::atomic<int64_t> ramp_start_{0};
  std::atomic<int64_t> window_start_{std::numeric_limits<int64_t>::max()};
  std::atomic<int64_t> window_end_{std::numeric_limits<int64_t>::max()};
  std::array<std::atomic<int64_t>, kCounts> counts_{};
  absl::Mutex mu_;
  std::map<std::string, int64_t> errors_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> ramp_errors_ ABSL_GUARDED_BY(mu_);
  std::string first_error_ ABSL_GUARDED_BY(mu_);
  int64_t first_error_at_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t started_at_first_error_ ABSL_GUARDED_BY(mu_) = 0;
};

// ---- asynchronous calls and streams ----

// Live gRPC operations (unary calls in flight and open streams): the run
// waits for them to end before it tears the channels down.
std::atomic<int64_t> live_operations{0};

// Starts one unary call with the callback API: `start` makes the stub call
// with the context, request, response and completion it is given; `done`
// gets the status and the response.
template <typename Response, typename Request, typename Start>
void CallAsync(const std::string& token, absl::Duration deadline, Request request, Start start,
               std::function<void(const grpc::Status&, const Response&)> done) {
  struct Call {
    grpc::ClientContext context;
    Request request;
    Response response;
  };
  auto* call = new Call;
  call->request = std::move(request);
  auth::AttachToken(call->context, token);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  live_operations.fetch_add(1);
  start(&call->context, &call->request, &call->response,
        [call, done = std::move(done)](grpc::Status status) {
          done(status, call->response);
          delete call;
          live_operations.fetch_sub(1);
        });
}

// A server stream read to its end, with the callback API. Owned by
// shared_ptrs: its holders and, until OnDone, itself. `on_message` and
// `on_done` run on gRPC's threads.
template <typename Request, typename Response>
class ReadStream final : public grpc::ClientReadReactor<Response> {
 public:
  using MessageHandler = std::function<void(const Response&)>;
  using DoneHandler = std::function<void(const grpc::Status&, bool cancelled_by_us)>;

  // `start` makes the stub call (context, request, reactor).
  template <typename Start>
  static std::shared_ptr<ReadStream> Open(const std::string& token, Request request, Start start,
                                          MessageHandler on_message, DoneHandler on_done) {
    std::shared_ptr<ReadStream> stream(
        new ReadStream(std::move(request), std::move(on_message), std::move(on_done)));
    stream->self_ = stream;
    auth::AttachToken(stream->context_, token);
    live_operations.fetch_add(1);
    start(&stream->context_, &stream->request_, stream.get());
    // gRPC releases the call before OnDone: the hold keeps it, and so
    // Cancel's TryCancel, valid until the stream has ended.
    stream->AddHold();
    stream->StartRead(&stream->response_);
    stream->StartCall();
    return stream;
  }

  // Ends the stream from this side (if it has not ended); OnDone then
  // reports it as ours.
  void Cancel() {
    absl::MutexLock lock(&mu_);
    if (ended_) return;
    cancelled_ = true;
    context_.TryCancel();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      {
        absl::MutexLock lock(&mu_);
        ended_ = true;
      }
      this->RemoveHold();
      return;
    }
    on_message_(response_);
    this->StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<ReadStream> keep = std::move(self_);
    on_done_(status, cancelled_.load());
    // The callbacks may hold their owners: let go of them, so that a stream
    // and its conversation do not keep each other alive.
    on_message_ = nullptr;
    on_done_ = nullptr;
    live_operations.fetch_sub(1);
  }

 private:
  ReadStream(Request request, MessageHandler on_message, DoneHandler on_done)
      : request_(std::move(request)),
        on_message_(std::move(on_message)),
        on_done_(std::move(on_done)) {}

  grpc::ClientContext context_;
  Request request_;
  Response response_;
  MessageHandler on_message_;
  DoneHandler on_done_;
  absl::Mutex mu_;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> cancelled_{false};
  std::shared_ptr<ReadStream> self_;
};

using SessionStream = ReadStream<sv1::StreamSessionEventsRequest, sv1::StreamSessionEventsResponse>;
using OfferStream = ReadStream<rv1::WatchOffersRequest, rv1::WatchOffersResponse>;

// ---- the people ----

struct Agent {
  std::string id;
  std::string token;
  std::shared_ptr<OfferStream> offers;  // guarded by the floor's mutex
};

// One conversation: a customer, their session, and once assigned its agent.
struct Conversation {
  int slot = 0;
  std::string customer_id;
  std::string customer_token;
  bool asks_for_human = false;

  absl::Mutex mu;
  std::string session_id ABSL_GUARDED_BY(mu);
  sv1::SessionState state ABSL_GUARDED_BY(mu) = sv1::SESSION_STATE_UNSPECIFIED;
  bool ended ABSL_GUARDED_BY(mu) = false;  // the slot has moved on
  bool failed ABSL_GUARDED_BY(mu) = false;  // given up after an error
  // The customer's side.
  std::shared_ptr<SessionStream> customer_stream ABSL_GUARDED_BY(mu);
  bool customer_live ABSL_GUARDED_BY(mu) = false;  // past the stream's caught_up
  int customer_sent ABSL_GUARDED_BY(mu) = 0;
  bool saw_own_last ABSL_GUARDED_BY(mu) = false;
  int64_t bot_asked_at ABSL_GUARDED_BY(mu) = 0;  // unanswered customer message in BOT
  int64_t escalated_at ABSL_GUARDED_BY(mu) = 0;
  bool customer_resolving ABSL_GUARDED_BY(mu) = false;
  // The agent's side.
  Agent* agent ABSL_GUARDED_BY(mu) = nullptr;
  std::shared_ptr<SessionStream> agent_stream ABSL_GUARDED_BY(mu);
  bool agent_live ABSL_GUARDED_BY(mu) = false;
  int agent_sent ABSL_GUARDED_BY(mu) = 0;
  bool unanswered ABSL_GUARDED_BY(mu) = false;
  bool customer_done ABSL_GUARDED_BY(mu) = false;  // the agent saw the last message
  bool reply_scheduled ABSL_GUARDED_BY(mu) = false;
  bool agent_resolving ABSL_GUARDED_BY(mu) = false;
};

const char* const kBotQuestions[] = {
    "what are the trading fees",
    "how do I create an API key",
    "what is the minimum order size",
    "how do I set up an anti-phishing code",
    "why is my limit order not filled",
    "how many confirmations does a deposit need",
};

class Floor {
 public:
  Floor(const Config& config, const Platform& platform)
      : config_(config), platform_(platform), run_id_(absl::StrFormat("%x", getpid())) {
    for (int i = 0; i < config.channels; ++i) {
      sessions_.push_back(sv1::SessionsService::NewStub(grpc::CreateCustomChannel(
          platform.address("sessions"), grpc::InsecureChannelCredentials(),
          DistinctChannelArguments(i))));
    }
    auto channel = [&](const std::string& service) {
      return grpc::CreateCustomChannel(platform.address(service),
                                       grpc::InsecureChannelCredentials(),
                                       DistinctChannelArguments(0));
    };
    routing_ = rv1::RoutingService::NewStub(channel("routing"));
    presence_ = pv1::PresenceService::NewStub(channel("presence"));
    feedback_ = fv1::FeedbackService::NewStub(channel("feedback"));
    absl::MutexLock lock(&mu_);
    slots_.resize(config.conversations);
    slot_failures_.resize(config.conversations);
  }

  Stats& stats() { return stats_; }

  // Puts every agent online with their offers watched; false on failure.
  bool StartAgents() {
    const std::string supervisor = platform_.Token(auth::Role::kSupervisor, "floor-supervisor");
    agents_.resize(config_.agents);
    int64_t heartbeat_ns = absl::ToInt64Nanoseconds(absl::Seconds(10));
    for (int i = 0; i < config_.agents; ++i) {
      Agent& agent = agents_[i];
      agent.id = absl::StrCat("floor-agent-", i);
      agent.token = platform_.Token(auth::Role::kAgent, agent.id);
      pv1::SetAgentProfileRequest grant;
      grant.set_agent_id(agent.id);
      pv1::AgentProfile* profile = grant.mutable_profile();
      profile->set_display_name(absl::StrCat("Agent ", i));
      for (int c = common::v1::CATEGORY_ACCOUNT_SECURITY; c <= common::v1::CATEGORY_GENERAL; ++c) {
        profile->mutable_skills()->add_categories(static_cast<common::v1::Category>(c));
      }
      profile->mutable_skills()->add_languages("en");
      pv1::ChannelCapacity* chat = profile->add_capacities();
      chat->set_channel(common::v1::CHANNEL_CHAT);
      chat->set_capacity(config_.agent_capacity);
      pv1::SetAgentProfileResponse granted;
      pv1::SetStatusRequest online;
      online.set_status(pv1::AGENT_STATUS_ONLINE);
      pv1::SetStatusResponse set;
      grpc::Status status = presence_->SetAgentProfile(Context(supervisor).get(), grant, &granted);
      if (status.ok()) status = presence_->SetStatus(Context(agent.token).get(), online, &set);
      if (!status.ok()) {
        std::fprintf(stderr, "floor: agent %s: %s\n", agent.id.c_str(),
                     status.error_message().c_str());
        return false;
      }
      if (set.has_heartbeat_interval()) {
        heartbeat_ns = set.heartbeat_interval().seconds() * 1'000'000'000 +
                       set.heartbeat_interval().nanos();
      }
    }
    for (Agent& agent : agents_) WatchOffers(&agent);
    // Heartbeats spread over the interval, each agent on its own schedule.
    for (int i = 0; i < config_.agents; ++i) {
      scheduler_.After(heartbeat_ns * i / config_.agents,
                       [this, i, heartbeat_ns] { Heartbeat(&agents_[i], heartbeat_ns); });
    }
    const absl::Time give_up = absl::Now() + absl::Seconds(60);
    while (offers_caught_up_.load() < config_.agents) {
      if (absl::Now() > give_up) {
        std::fprintf(stderr, "floor: only %d of %d offer watches caught up\n",
                     offers_caught_up_.load(), config_.agents);
        return false;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return true;
  }

  // Starts conversation slot i at `when` (the ramp).
  void StartSlotAt(int slot, int64_t when) {
    scheduler_.At(when, [this, slot] { StartConversation(slot); });
  }

  // Stops every person: nothing new starts, every stream is cancelled; then
  // waits (bounded) for the calls and streams still running. Returns
  // whether they all ended.
  bool Stop() {
    stopping_ = true;
    scheduler_.Stop();
    // A callback that looked at stopping_ just before it was set may still
    // open a stream after a sweep: sweep again until nothing runs.
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (live_operations.load() > 0 && absl::Now() < give_up) {
      CancelStreams();
      absl::SleepFor(absl::Milliseconds(50));
    }
    return live_operations.load() == 0;
  }

  void CancelStreams() {
    std::vector<std::shared_ptr<SessionStream>> streams;
    std::vector<std::shared_ptr<OfferStream>> watches;
    {
      absl::MutexLock lock(&mu_);
      for (auto& conversation : slots_) {
        if (conversation == nullptr) continue;
        absl::MutexLock c(&conversation->mu);
        if (conversation->customer_stream) streams.push_back(conversation->customer_stream);
        if (conversation->agent_stream) streams.push_back(conversation->agent_stream);
      }
      for (Agent& agent : agents_) {
        if (agent.offers) watches.push_back(agent.offers);
      }
    }
    for (auto& s : streams) s->Cancel();
    for (auto& w : watches) w->Cancel();
  }

  // What the conversations are doing now, by session state.
  std::string StatesJson() {
    std::map<std::string, int> states;
    int agents_busy = 0;
    absl::MutexLock lock(&mu_);
    for (auto& conversation : slots_) {
      if (conversation == nullptr) continue;
      absl::MutexLock c(&conversation->mu);
      absl::string_view name = sv1::SessionState_Name(conversation->state);
      absl::ConsumePrefix(&name, "SESSION_STATE_");
      ++states[std::string(name)];
      if (conversation->agent_stream) ++agents_busy;
    }
    std::string out = "{";
    for (const auto& [name, n] : states) {
      absl::StrAppend(&out, out.size() > 1 ? "," : "", "\"", name, "\":", n);
    }
    return absl::StrCat(out, "},\"agent_session_streams\":", agents_busy);
  }

 private:
  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, token);
    context->set_deadline(absl::ToChronoTime(absl::Now() + config_.deadline));
    return context;
  }

  sv1::SessionsService::Stub* Sessions(int slot) {
    return sessions_[slot % sessions_.size()].get();
  }

  int64_t SendPause() const {
    return Uniform(config_.send_interval_min, config_.send_interval_max);
  }
  int64_t ReplyPause() const { return Uniform(config_.reply_delay_min, config_.reply_delay_max); }

  // ---- agents ----

  void WatchOffers(Agent* agent) {
    if (stopping_) return;
    auto stream = OfferStream::Open(
        agent->token, rv1::WatchOffersRequest(),
        [this](grpc::ClientContext* context, rv1::WatchOffersRequest* request,
               OfferStream* reactor) {
          routing_->async()->WatchOffers(context, request, reactor);
        },
        [this, agent](const rv1::WatchOffersResponse& response) {
          if (response.has_caught_up()) {
            offers_caught_up_.fetch_add(1);
          } else if (response.has_offer() &&
                     response.offer().outcome() == rv1::OFFER_OUTCOME_UNSPECIFIED) {
            stats_.Add(kOffers);
            const std::string offer_id = response.offer().offer_id();
            scheduler_.After(ReplyPause(), [this, agent, offer_id] { Accept(agent, offer_id); });
          }
        },
        [this, agent](const grpc::Status& status, bool cancelled_by_us) {
          if (cancelled_by_us || stopping_) return;
          // The watch must last the run: count the end and watch again.
          stats_.Error("watch_offers", status.error_code());
          scheduler_.After(absl::ToInt64Nanoseconds(absl::Seconds(1)),
                           [this, agent] { WatchOffers(agent); });
        });
    absl::MutexLock lock(&mu_);
    agent->offers = std::move(stream);
  }

  void Heartbeat(Agent* agent, int64_t interval_ns) {
    if (stopping_) return;
    CallAsync<pv1::HeartbeatResponse>(
        agent->token, config_.deadline, pv1::HeartbeatRequest(),
        [this](auto* context, auto* request, auto* response, auto done) {
          presence_->async()->Heartbeat(context, request, response, std::move(done));
        },
        [this](const grpc::Status& status, const pv1::HeartbeatResponse&) {
          if (!status.ok()) stats_.Error("heartbeat", status.error_code());
        });
    scheduler_.After(interval_ns, [this, agent, interval_ns] { Heartbeat(agent, interval_ns); });
  }

  void Accept(Agent* agent, const std::string& offer_id) {
    if (stopping_) return;
    rv1::AcceptOfferRequest request;
    request.set_offer_id(offer_id);
    CallAsync<rv1::AcceptOfferResponse>(
        agent->token, config_.deadline, std::move(request),
        [this](auto* context, auto* request, auto* response, auto done) {
          routing_->async()->AcceptOffer(context, request, response, std::move(done));
        },
        [this, agent](const grpc::Status& status, const rv1::AcceptOfferResponse& response) {
          if (!status.ok()) {
            stats_.Error("accept_offer", status.error_code());
            return;
          }
          stats_.Add(kAccepted);
          Assigned(agent, response.assignment().session_id());
        });
  }

  // The agent has the session: they open its stream.
  void Assigned(Agent* agent, const std::string& session_id) {
    std::shared_ptr<Conversation> conversation;
    {
      absl::MutexLock lock(&mu_);
      auto it = by_session_.find(session_id);
      if (it != by_session_.end()) {
        conversation = it->second.lock();
      } else if (!stopping_) {
        // CreateSession's answer may come after the offer was accepted; or
        // the customer has left (then this waits for nothing).
        early_assignments_[session_id] = agent;
      }
    }
    if (conversation == nullptr || stopping_) return;
    {
      absl::MutexLock lock(&conversation->mu);
      if (conversation->ended) return;
      conversation->agent = agent;
    }
    std::weak_ptr<Conversation> weak = conversation;
    sv1::StreamSessionEventsRequest request;
    request.set_session_id(session_id);
    auto stream = SessionStream::Open(
        agent->token, std::move(request),
        [this, slot = conversation->slot](grpc::ClientContext* context,
                                          sv1::StreamSessionEventsRequest* request,
                                          SessionStream* reactor) {
          Sessions(slot)->async()->StreamSessionEvents(context, request, reactor);
        },
        [this, weak](const sv1::StreamSessionEventsResponse& response) {
          if (auto c = weak.lock()) OnAgentEvent(c, response);
        },
        [this, weak](const grpc::Status& status, bool cancelled_by_us) {
          auto c = weak.lock();
          if (c != nullptr) {
            absl::MutexLock lock(&c->mu);
            c->agent_stream = nullptr;
          }
          if (!status.ok() && !cancelled_by_us && !stopping_) {
            stats_.Error("agent_stream", status.error_code());
          }
        });
    absl::MutexLock lock(&conversation->mu);
    conversation->agent_stream = std::move(stream);
  }

  void OnAgentEvent(const std::shared_ptr<Conversation>& c,
                    const sv1::StreamSessionEventsResponse& response) {
    bool reply = false;
    {
      absl::MutexLock lock(&c->mu);
      if (response.has_caught_up()) {
        c->agent_live = true;
        reply = c->unanswered;
      } else if (response.has_event() && response.event().has_message() &&
                 response.event().message().sender_role() == common::v1::SENDER_ROLE_CUSTOMER) {
        const std::string& id = response.event().message().client_message_id();
        if (c->agent_live) {
          const int64_t sent = SentAt(id);
          if (stats_.InWindow(sent)) {
            const int64_t latency = NowNanos() - sent;
            stats_.to_agent.Record(latency);
            stats_.delivered.Record(latency);
          }
        }
        c->unanswered = true;
        if (IsLast(id)) c->customer_done = true;
        reply = c->agent_live;
      }
      if (reply) {
        if (c->reply_scheduled || c->agent_resolving) {
          reply = false;
        } else {
          c->reply_scheduled = true;
        }
      }
    }
    if (reply) scheduler_.After(ReplyPause(), [this, c] { AgentReply(c); });
  }

  void AgentReply(const std::shared_ptr<Conversation>& c) {
    std::string token, session_id;
    bool answers_last = false;
    sv1::SendMessageRequest request;
    {
      absl::MutexLock lock(&c->mu);
      c->reply_scheduled = false;
      if (c->ended || c->agent == nullptr || c->agent_resolving || stopping_) return;
      c->unanswered = false;
      answers_last = c->customer_done;
      if (answers_last) c->agent_resolving = true;
      token = c->agent->token;
      session_id = c->session_id;
      request.set_client_message_id(MessageId('a', ++c->agent_sent, NowNanos()));
    }
    request.set_session_id(session_id);
    request.mutable_message()->set_text(answers_last ? "Done: it is credited now. Anything else?"
                                                     : "Thank you, I am checking it now");
    CallAsync<sv1::SendMessageResponse>(
        token, config_.deadline, std::move(request),
        [this, slot = c->slot](auto* context, auto* request, auto* response, auto done) {
          Sessions(slot)->async()->SendMessage(context, request, response, std::move(done));
        },
        [this, c, answers_last](const grpc::Status& status, const sv1::SendMessageResponse&) {
          if (!status.ok()) {
            stats_.Error("agent_send", status.error_code());
            Abandon(c);
            return;
          }
          stats_.Add(kAgentMessages);
          if (answers_last) AgentResolve(c);
        });
  }

  void AgentResolve(const std::shared_ptr<Conversation>& c) {
    std::string token;
    sv1::ResolveSessionRequest request;
    {
      absl::MutexLock lock(&c->mu);
      if (c->agent == nullptr) return;
      token = c->agent->token;
      request.set_session_id(c->session_id);
    }
    request.set_resolution_summary("credited");
    request.set_request_id(absl::StrCat("resolve-", c->customer_id));
    CallAsync<sv1::ResolveSessionResponse>(
        token, config_.deadline, std::move(request),
        [this, slot = c->slot](auto* context, auto* request, auto* response, auto done) {
          Sessions(slot)->async()->ResolveSession(context, request, response, std::move(done));
        },
        [this, c](const grpc::Status& status, const sv1::ResolveSessionResponse&) {
          if (!status.ok()) {
            stats_.Error("agent_resolve", status.error_code());
            Abandon(c);
            return;
          }
          stats_.Add(kAgentResolved);
          // The agent closes the conversation on their side.
          std::shared_ptr<SessionStream> stream;
          {
            absl::MutexLock lock(&c->mu);
            stream = c->agent_stream;
          }
          if (stream) stream->Cancel();
        });
  }

  // ---- customers ----

  void StartConversation(int slot) {
    if (stopping_) return;
    auto c = std::make_shared<Conversation>();
    c->slot = slot;
    c->customer_id = absl::StrCat("floor-", run_id_, "-", next_customer_.fetch_add(1));
    c->customer_token = platform_.Token(auth::Role::kCustomer, c->customer_id);
    c->asks_for_human = Chance(config_.human_percent / 100.0);
    {
      absl::MutexLock lock(&mu_);
      slots_[slot] = c;
    }
    stats_.Add(kStarted);
    // A conversation that outlives every pause it should take is stuck
    // somewhere: count it and let the customer give up.
    const absl::Duration limit = config_.messages * config_.send_interval_max +
                                 10 * config_.reply_delay_max + absl::Seconds(60);
    std::weak_ptr<Conversation> weak = c;
    scheduler_.After(absl::ToInt64Nanoseconds(limit), [this, weak] {
      auto c = weak.lock();
      if (c == nullptr) return;
      {
        absl::MutexLock lock(&c->mu);
        if (c->ended) return;
      }
      stats_.Error("conversation_timeout", grpc::StatusCode::DEADLINE_EXCEEDED);
      Abandon(c);
    });
    const int64_t sent = NowNanos();
    sv1::CreateSessionRequest request;
    request.set_channel(common::v1::CHANNEL_CHAT);
    request.set_language("en");
    request.set_request_id(absl::StrCat("create-", c->customer_id));
    if (c->asks_for_human) {
      request.set_category(common::v1::CATEGORY_DEPOSIT);
      request.mutable_first_message()->set_text(
          "My deposit has not arrived, I want to talk to a human agent");
    } else {
      request.mutable_first_message()->set_text(kBotQuestions[slot % std::size(kBotQuestions)]);
    }
    request.set_first_client_message_id(MessageId(config_.messages == 1 ? 'x' : 'c', 1, sent));
    {
      absl::MutexLock lock(&c->mu);
      c->customer_sent = 1;
    }
    CallAsync<sv1::CreateSessionResponse>(
        c->customer_token, config_.deadline, std::move(request),
        [this, slot](auto* context, auto* request, auto* response, auto done) {
          Sessions(slot)->async()->CreateSession(context, request, response, std::move(done));
        },
        [this, c, sent](const grpc::Status& status, const sv1::CreateSessionResponse& response) {
          if (!status.ok()) {
            stats_.Error("create_session", status.error_code());
            Restart(c, /*failed=*/true);
            return;
          }
          stats_.Add(kCustomerMessages);
          const std::string session_id = response.session().session_id();
          {
            absl::MutexLock lock(&c->mu);
            c->session_id = session_id;
            c->state = response.session().state();
          }
          Agent* early_agent = nullptr;
          {
            absl::MutexLock lock(&mu_);
            by_session_[session_id] = c;
            if (auto it = early_assignments_.find(session_id); it != early_assignments_.end()) {
              early_agent = it->second;
              early_assignments_.erase(it);
            }
          }
          OpenCustomerStream(c);
          if (early_agent != nullptr) Assigned(early_agent, session_id);
          if (config_.messages > 1) {
            scheduler_.At(sent + SendPause(), [this, c] { CustomerSend(c); });
          }
        });
  }

  void OpenCustomerStream(const std::shared_ptr<Conversation>& c) {
    std::string session_id;
    {
      absl::MutexLock lock(&c->mu);
      session_id = c->session_id;
    }
    std::weak_ptr<Conversation> weak = c;
    sv1::StreamSessionEventsRequest request;
    request.set_session_id(session_id);
    auto stream = SessionStream::Open(
        c->customer_token, std::move(request),
        [this, slot = c->slot](grpc::ClientContext* context,
                               sv1::StreamSessionEventsRequest* request, SessionStream* reactor) {
          Sessions(slot)->async()->StreamSessionEvents(context, request, reactor);
        },
        [this, weak](const sv1::StreamSessionEventsResponse& response) {
          if (auto c = weak.lock()) OnCustomerEvent(c, response);
        },
        // The stream holds the conversation until it ends: its end moves the
        // slot on to a new conversation.
        [this, c](const grpc::Status& status, bool cancelled_by_us) {
          {
            absl::MutexLock lock(&c->mu);
            c->customer_stream = nullptr;
          }
          const bool broke = !status.ok() && !cancelled_by_us && !stopping_;
          if (broke) stats_.Error("customer_stream", status.error_code());
          bool gave_up = false;
          {
            absl::MutexLock lock(&c->mu);
            gave_up = c->failed;
          }
          Restart(c, broke || gave_up);
        });
    absl::MutexLock lock(&c->mu);
    c->customer_stream = std::move(stream);
  }

  void OnCustomerEvent(const std::shared_ptr<Conversation>& c,
                       const sv1::StreamSessionEventsResponse& response) {
    enum { kNothing, kResolve, kRate, kLeave } next = kNothing;
    {
      absl::MutexLock lock(&c->mu);
      if (response.has_caught_up()) {
        c->customer_live = true;
        return;
      }
      if (!response.has_event()) return;
      const sv1::SessionEvent& event = response.event();
      const int64_t now = NowNanos();
      if (event.has_message()) {
        const sv1::Message& message = event.message();
        switch (message.sender_role()) {
          case common::v1::SENDER_ROLE_CUSTOMER:
            if (c->state == sv1::SESSION_STATE_BOT) c->bot_asked_at = SentAt(message.client_message_id());
            if (IsLast(message.client_message_id())) c->saw_own_last = true;
            break;
          case common::v1::SENDER_ROLE_BOT:
            if (c->bot_asked_at != 0) {
              if (stats_.InWindow(c->bot_asked_at)) stats_.bot_turn.Record(now - c->bot_asked_at);
              c->bot_asked_at = 0;
              if (c->saw_own_last && c->state == sv1::SESSION_STATE_BOT && !c->customer_resolving) {
                c->customer_resolving = true;
                next = kResolve;
              }
            }
            break;
          case common::v1::SENDER_ROLE_AGENT:
            if (c->customer_live) {
              const int64_t sent = SentAt(message.client_message_id());
              if (stats_.InWindow(sent)) {
                stats_.to_customer.Record(now - sent);
                stats_.delivered.Record(now - sent);
              }
            }
            break;
          default:
            break;
        }
      } else if (event.has_state_changed()) {
        const sv1::StateChange& change = event.state_changed();
        c->state = change.state();
        if (change.state() == sv1::SESSION_STATE_QUEUED &&
            change.previous_state() == sv1::SESSION_STATE_BOT) {
          stats_.Add(kEscalated);
          c->escalated_at = now;
          c->bot_asked_at = 0;
        } else if (change.state() == sv1::SESSION_STATE_ASSIGNED && c->escalated_at != 0) {
          if (stats_.InWindow(c->escalated_at)) stats_.agent_wait.Record(now - c->escalated_at);
          c->escalated_at = 0;
        } else if (change.state() == sv1::SESSION_STATE_RESOLVED) {
          next = change.previous_state() == sv1::SESSION_STATE_ASSIGNED ? kRate : kLeave;
        }
      }
    }
    switch (next) {
      case kResolve:
        // The customer reads the answer, then marks it as solving the problem.
        scheduler_.After(ReplyPause(), [this, c] { CustomerResolve(c); });
        break;
      case kRate:
        scheduler_.After(ReplyPause(), [this, c] { CustomerRate(c); });
        break;
      case kLeave:
        Leave(c);
        break;
      case kNothing:
        break;
    }
  }

  void CustomerSend(const std::shared_ptr<Conversation>& c) {
    sv1::SendMessageRequest request;
    bool last = false;
    {
      absl::MutexLock lock(&c->mu);
      const bool open = c->state == sv1::SESSION_STATE_BOT ||
                        c->state == sv1::SESSION_STATE_QUEUED ||
                        c->state == sv1::SESSION_STATE_ASSIGNED;
      if (c->ended || stopping_ || !open || c->customer_sent >= config_.messages) return;
      const int n = ++c->customer_sent;
      last = n == config_.messages;
      request.set_session_id(c->session_id);
      request.set_client_message_id(MessageId(last ? 'x' : 'c', n, NowNanos()));
    }
    const int64_t sent = SentAt(request.client_message_id());
    request.mutable_message()->set_text(c->asks_for_human
                                            ? "Here are the details: the transaction hash is 0x5f3a"
                                            : kBotQuestions[(c->slot + sent) % std::size(kBotQuestions)]);
    CallAsync<sv1::SendMessageResponse>(
        c->customer_token, config_.deadline, std::move(request),
        [this, slot = c->slot](auto* context, auto* request, auto* response, auto done) {
          Sessions(slot)->async()->SendMessage(context, request, response, std::move(done));
        },
        [this, c, last, sent](const grpc::Status& status, const sv1::SendMessageResponse&) {
          if (!status.ok()) {
            stats_.Error("customer_send", status.error_code());
            Abandon(c);
            return;
          }
          stats_.Add(kCustomerMessages);
          if (stats_.InWindow(sent)) stats_.send_ack.Record(NowNanos() - sent);
          if (!last) scheduler_.At(sent + SendPause(), [this, c] { CustomerSend(c); });
        });
  }

  void CustomerResolve(const std::shared_ptr<Conversation>& c) {
    sv1::ResolveSessionRequest request;
    {
      absl::MutexLock lock(&c->mu);
      // The bot may have escalated meanwhile: then an agent resolves.
      if (c->ended || stopping_ || c->state != sv1::SESSION_STATE_BOT) return;
      request.set_session_id(c->session_id);
    }
    request.set_request_id(absl::StrCat("resolve-", c->customer_id));
    CallAsync<sv1::ResolveSessionResponse>(
        c->customer_token, config_.deadline, std::move(request),
        [this, slot = c->slot](auto* context, auto* request, auto* response, auto done) {
          Sessions(slot)->async()->ResolveSession(context, request, response, std::move(done));
        },
        [this, c](const grpc::Status& status, const sv1::ResolveSessionResponse&) {
          if (!status.ok()) {
            stats_.Error("customer_resolve", status.error_code());
            Abandon(c);
            return;
          }
          stats_.Add(kBotResolved);
          // Leaving follows from the RESOLVED event on the customer's stream.
        });
  }

  void CustomerRate(const std::shared_ptr<Conversation>& c) {
    fv1::SubmitFeedbackRequest request;
    {
      absl::MutexLock lock(&c->mu);
      if (c->ended || stopping_) return;
      request.set_session_id(c->session_id);
    }
    request.mutable_ratings()->set_response_speed(5);
    request.mutable_ratings()->set_professionalism(5);
    request.mutable_ratings()->set_problem_resolution(4);
    request.set_overall_satisfaction(5);
    request.set_request_id(absl::StrCat("rate-", c->customer_id));
    CallAsync<fv1::SubmitFeedbackResponse>(
        c->customer_token, config_.deadline, std::move(request),
        [this](auto* context, auto* request, auto* response, auto done) {
          feedback_->async()->SubmitFeedback(context, request, response, std::move(done));
        },
        [this, c](const grpc::Status& status, const fv1::SubmitFeedbackResponse&) {
          if (!status.ok()) {
            stats_.Error("rate", status.error_code());
          } else {
            stats_.Add(kRated);
          }
          Leave(c);
        });
  }

  // The customer closes the chat: their stream ends, and its end starts the
  // slot's next conversation.
  void Leave(const std::shared_ptr<Conversation>& c) {
    std::shared_ptr<SessionStream> customer, agent;
    {
      absl::MutexLock lock(&c->mu);
      customer = c->customer_stream;
      agent = c->agent_stream;
    }
    if (agent) agent->Cancel();
    if (customer) customer->Cancel();
  }

  // A call failed: the customer gives up on the session (CloseSession, so
  // that no agent capacity stays held for it) and leaves.
  void Abandon(const std::shared_ptr<Conversation>& c) {
    sv1::CloseSessionRequest request;
    {
      absl::MutexLock lock(&c->mu);
      if (c->ended || c->session_id.empty()) return;
      c->failed = true;
      request.set_session_id(c->session_id);
    }
    if (!stopping_) {
      CallAsync<sv1::CloseSessionResponse>(
          c->customer_token, config_.deadline, std::move(request),
          [this, slot = c->slot](auto* context, auto* request, auto* response, auto done) {
            Sessions(slot)->async()->CloseSession(context, request, response, std::move(done));
          },
          [this](const grpc::Status& status, const sv1::CloseSessionResponse&) {
            if (!status.ok()) stats_.Error("close_session", status.error_code());
          });
    }
    Leave(c);
  }

  // The conversation is over: its slot starts a new one, at once or, after
  // failures, backing off as a client should (1, 2, 4 ... 32 s, with
  // jitter), so that an overloaded platform is not also flooded by retries.
  void Restart(const std::shared_ptr<Conversation>& c, bool failed) {
    std::shared_ptr<SessionStream> agent;
    std::string session_id;
    {
      absl::MutexLock lock(&c->mu);
      if (c->ended) return;
      c->ended = true;
      agent = c->agent_stream;
      session_id = c->session_id;
    }
    if (agent) agent->Cancel();
    {
      absl::MutexLock lock(&mu_);
      if (!session_id.empty()) by_session_.erase(session_id);
    }
    if (stopping_) return;
    const int slot = c->slot;
    int64_t pause = 0;
    {
      absl::MutexLock lock(&mu_);
      int& failures = slot_failures_[slot];
      failures = failed ? failures + 1 : 0;
      if (failed) {
        pause = absl::ToInt64Nanoseconds(absl::Seconds(1) * (1 << std::min(failures - 1, 5))) +
                Uniform(absl::ZeroDuration(), absl::Seconds(1));
      }
    }
    scheduler_.After(pause, [this, slot] { StartConversation(slot); });
  }

  const Config config_;
  const Platform& platform_;
  const std::string run_id_;
  Stats stats_;
  std::vector<std::unique_ptr<sv1::SessionsService::Stub>> sessions_;
  std::unique_ptr<rv1::RoutingService::Stub> routing_;
  std::unique_ptr<pv1::PresenceService::Stub> presence_;
  std::unique_ptr<fv1::FeedbackService::Stub> feedback_;
  std::vector<Agent> agents_;
  std::atomic<int> offers_caught_up_{0};
  std::atomic<int64_t> next_customer_{0};
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  std::vector<std::shared_ptr<Conversation>> slots_ ABSL_GUARDED_BY(mu_);
  std::vector<int> slot_failures_ ABSL_GUARDED_BY(mu_);  // in a row, per slot
  absl::flat_hash_map<std::string, std::weak_ptr<Conversation>> by_session_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Agent*> early_assignments_ ABSL_GUARDED_BY(mu_);
  // Last: its thread runs actions on everything above.
  Scheduler scheduler_;
};

double OwnCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

int Main(int argc, char** argv) {
  testing::UseRunfilesOf(argv[0]);
  Config config;
  config::FlagSet flags("floor_benchmark");
  flags.Add("conversations", &config.conversations, "conversations going on at once");
  flags.Add("agents", &config.agents, "agents online, each watching their offers");
  flags.Add("agent_capacity", &config.agent_capacity, "chats each agent takes at once (<= 30)");
  flags.Add("human_percent", &config.human_percent,
            "percentage of conversations that ask for a human at once");
  flags.Add("messages", &config.messages, "messages each customer sends in a conversation");
  flags.Add("send_interval_min", &config.send_interval_min, "shortest pause between a customer's messages");
  flags.Add("send_interval_max", &config.send_interval_max, "longest pause between a customer's messages");
  flags.Add("reply_delay_min", &config.reply_delay_min,
            "shortest pause before an agent answers or accepts, or a customer acts on an answer");
  flags.Add("reply_delay_max", &config.reply_delay_max, "longest such pause");
  flags.Add("ramp", &config.ramp, "conversations start evenly over this long");
  flags.Add("settle", &config.settle, "pause between the ramp's end and the measured window");
  flags.Add("duration", &config.duration, "the measured window");
  flags.Add("channels", &config.channels, "channels (TCP connections) to sessions");
  flags.Add("deadline", &config.deadline, "deadline of every unary call");
  flags.Add("json_out", &config.json_out, "also write the JSON result to this file");
  flags.Add("keep_data", &config.platform.keep_data,
            "leave the platform's data folder (databases, logs) behind");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "floor_benchmark: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  // 32 streams per agent at most (sessions' limit), one for the offers.
  if (config.conversations < 1 || config.agents < 1 || config.agent_capacity < 1 ||
      config.agent_capacity > 30 || config.messages < 1 || config.channels < 1 ||
      config.human_percent < 0 || config.human_percent > 100 ||
      config.send_interval_max < config.send_interval_min ||
      config.reply_delay_max < config.reply_delay_min || config.duration <= absl::ZeroDuration()) {
    std::fprintf(stderr, "floor_benchmark: counts must be positive, capacity at most 30, "
                         "human_percent in 0..100, each max at least its min\n");
    return 2;
  }
  const absl::Time began = absl::Now();
  Platform platform(config.platform);
  const std::vector<Platform::Process> processes = platform.processes();
  Floor run(config, platform);
  if (!run.StartAgents()) return 1;
  const double agents_seconds = absl::ToDoubleSeconds(absl::Now() - began);
  std::fprintf(stderr, "floor: platform and %d agents up in %.1f s; ramping up %d conversations\n",
               config.agents, agents_seconds, config.conversations);

  const int64_t ramp_start = NowNanos();
  const int64_t ramp_ns = absl::ToInt64Nanoseconds(config.ramp);
  for (int i = 0; i < config.conversations; ++i) {
    run.StartSlotAt(i, ramp_start + ramp_ns * i / config.conversations);
  }
  const int64_t window_start = ramp_start + ramp_ns + absl::ToInt64Nanoseconds(config.settle);
  const int64_t window_end = window_start + absl::ToInt64Nanoseconds(config.duration);
  run.stats().Open(ramp_start, window_start, window_end);

  while (NowNanos() < window_start) absl::SleepFor(absl::Milliseconds(50));
  std::vector<ProcSample> before;
  for (const auto& p : processes) before.push_back(SampleProcess(p.pid));
  const double own_before = OwnCpuSeconds();
  const double load_before = LoadAverage();
  const auto counts_before = run.stats().Snapshot();
  std::fprintf(stderr, "floor: ramp done, measuring for %s\n",
               absl::FormatDuration(config.duration).c_str());
  while (NowNanos() < window_end) absl::SleepFor(absl::Milliseconds(50));
  std::vector<ProcSample> after;
  for (const auto& p : processes) after.push_back(SampleProcess(p.pid));
  const double own_cpu = OwnCpuSeconds() - own_before;
  const double load_after = LoadAverage();
  const auto counts_after = run.stats().Snapshot();
  const std::string states = run.StatesJson();
  const double seconds = absl::ToDoubleSeconds(config.duration);
  // The last sends of the window may still be on their way.
  absl::SleepFor(absl::Seconds(1));
  Stats& stats = run.stats();

  std::string servers = "{";
  double total_cpu = 0;
  int64_t total_rss = 0;
  for (size_t i = 0; i < processes.size(); ++i) {
    const double cpu = before[i].cpu_seconds >= 0 && after[i].cpu_seconds >= 0
                           ? after[i].cpu_seconds - before[i].cpu_seconds
                           : -1;
    total_cpu += std::max(cpu, 0.0);
    total_rss += std::max<int64_t>(after[i].rss_kib, 0);
    absl::StrAppendFormat(&servers,
                          "%s\"%s\":{\"pid\":%d,\"cpu_seconds\":%.2f,\"cpu_percent\":%.1f,"
                          "\"rss_kib\":%d}",
                          i == 0 ? "" : ",", processes[i].name, processes[i].pid, cpu,
                          cpu * 100 / seconds, after[i].rss_kib);
  }
  servers += "}";
  std::string counts = "{";
  for (int i = 0; i < kCounts; ++i) {
    absl::StrAppendFormat(&counts, "%s\"%s\":%d", i == 0 ? "" : ",", kCountNames[i],
                          counts_after[i] - counts_before[i]);
  }
  counts += "}";
  const int64_t errors = stats.ErrorCount();

  std::printf(
      "floor: %d conversations, %d agents (capacity %d), %.0f%% ask for a human, %d messages "
      "each every %s..%s; measured %.0f s after a %.0f s ramp; load average %.2f -> %.2f\n",
      config.conversations, config.agents, config.agent_capacity, static_cast<double>(config.human_percent),
      config.messages, absl::FormatDuration(config.send_interval_min).c_str(),
      absl::FormatDuration(config.send_interval_max).c_str(), seconds,
      absl::ToDoubleSeconds(config.ramp), load_before, load_after);
  std::printf("  send->receive (both)   %s  (%lld)\n", LatencyLine(stats.delivered).c_str(),
              static_cast<long long>(stats.delivered.count()));
  std::printf("  customer->agent        %s\n", LatencyLine(stats.to_agent).c_str());
  std::printf("  agent->customer        %s\n", LatencyLine(stats.to_customer).c_str());
  std::printf("  customer's send acked  %s\n", LatencyLine(stats.send_ack).c_str());
  std::printf("  bot turn               %s\n", LatencyLine(stats.bot_turn).c_str());
  std::printf("  escalation->assignment %s\n", LatencyLine(stats.agent_wait).c_str());
  std::printf("  counts %s\n  errors %s (ramp %s); first %s\n", counts.c_str(),
              stats.ErrorsJson(false).c_str(), stats.ErrorsJson(true).c_str(),
              stats.FirstErrorJson().c_str());
  std::printf("  servers: %.1f CPU s = %.0f%% of a core, RSS %lld KiB in all: %s\n", total_cpu,
              total_cpu * 100 / seconds, static_cast<long long>(total_rss), servers.c_str());
  std::printf("  this benchmark: %.1f CPU s = %.0f%% of a core; at the window's end %s\n",
              own_cpu, own_cpu * 100 / seconds, states.c_str());

  const std::string json = absl::StrFormat(
      "{\"label\":\"floor\",\"date\":\"%s\",\"conversations\":%d,\"agents\":%d,"
      "\"agent_capacity\":%d,\"human_percent\":%d,\"messages\":%d,"
      "\"send_interval_s\":[%.1f,%.1f],\"reply_delay_s\":[%.1f,%.1f],\"ramp_seconds\":%.0f,"
      "\"settle_seconds\":%.0f,\"seconds\":%.0f,\"channels\":%d,"
      "\"load_average\":{\"window_start\":%.2f,\"window_end\":%.2f},"
      "\"delivery\":%s,\"to_agent\":%s,\"to_customer\":%s,\"send_ack\":%s,\"bot_turn\":%s,\"agent_wait\":%s,"
      "\"counts\":%s,\"errors\":%s,\"ramp_errors\":%s,\"first_error\":%s,\"servers\":%s,"
      "\"servers_total\":{\"cpu_seconds\":%.2f,\"cpu_percent\":%.1f,\"rss_kib\":%d},"
      "\"loadgen\":{\"cpu_seconds\":%.2f,\"cpu_percent\":%.1f},\"at_window_end\":{\"states\":%s}}",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()),
      config.conversations, config.agents, config.agent_capacity, config.human_percent,
      config.messages, absl::ToDoubleSeconds(config.send_interval_min),
      absl::ToDoubleSeconds(config.send_interval_max),
      absl::ToDoubleSeconds(config.reply_delay_min), absl::ToDoubleSeconds(config.reply_delay_max),
      absl::ToDoubleSeconds(config.ramp), absl::ToDoubleSeconds(config.settle), seconds,
      config.channels, load_before, load_after, LatencyJson(stats.delivered),
      LatencyJson(stats.to_agent), LatencyJson(stats.to_customer), LatencyJson(stats.send_ack),
      LatencyJson(stats.bot_turn),
      LatencyJson(stats.agent_wait), counts, stats.ErrorsJson(false), stats.ErrorsJson(true),
      stats.FirstErrorJson(), servers, total_cpu, total_cpu * 100 / seconds, total_rss, own_cpu, own_cpu * 100 / seconds,
      states);
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
  if (!config.json_out.empty()) std::ofstream(config.json_out) << json << "\n";

  const int code = errors == 0 && stats.delivered.count() > 0 ? 0 : 1;
  if (!run.Stop()) {
    // Tearing down channels under running calls would crash in gRPC: stop
    // the servers and leave without destructors (the figures are out).
    std::fprintf(stderr,
                 "floor: %lld calls still running 30 s after the stop; exiting (data left in "
                 "%s)\n",
                 static_cast<long long>(live_operations.load()), platform.data_dir().c_str());
    platform.Stop();
    std::fflush(stderr);
    std::_Exit(code);
  }
  return code;
}

}  // namespace
}  // namespace switchboard::loadgen

int main(int argc, char** argv) {
  // As the servers run (libs/server): Debian's Abseil has the mutex deadlock
  // detector on, a global graph update on every lock, which would load the
  // instrument instead of the platform.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return switchboard::loadgen::Main(argc, argv);
}
