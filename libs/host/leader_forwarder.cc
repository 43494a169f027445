#include "libs/host/leader_forwarder.h"

#include <atomic>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "libs/log/log.h"
#include "libs/metrics/grpc_metrics.h"

namespace switchboard::host {
namespace {

// Connections a standby keeps to the leader (see stubs_).
constexpr int kConnections = 4;

// Metadata gRPC itself sets on every call, which a forwarded call gets
// afresh from its own channel and context (the deadline travels as one).
bool OwnedByGrpc(absl::string_view key) {
  return absl::StartsWith(key, ":") || absl::StartsWith(key, "grpc-") || key == "te" ||
         key == "content-type" || key == "user-agent" || key == "host";
}

// Marks a forwarded call, so that a standby never forwards one again: a
// published address that reaches a standby (a proxy in front of the
// database makes every process look like 127.0.0.1 to it) would otherwise
// send calls round in a loop.
constexpr char kForwardedBy[] = "x-switchboard-forwarded-by";

// The context of a call towards the leader: the caller's metadata (its
// token), the forwarding mark and the caller's deadline.
std::shared_ptr<grpc::ClientContext> UpstreamContext(
    const grpc::GenericCallbackServerContext& context, const std::string& service) {
  auto upstream = std::make_shared<grpc::ClientContext>();
  for (const auto& [key, value] : context.client_metadata()) {
    const absl::string_view name(key.data(), key.size());
    if (OwnedByGrpc(name)) continue;
    upstream->AddMetadata(std::string(name), std::string(value.data(), value.size()));
  }
  upstream->AddMetadata(kForwardedBy, service);
  upstream->set_deadline(context.deadline());
  return upstream;
}

// Whether `method` ("/package.Service/Method") is a unary method of a
// service linked into this binary. Unknown methods count as streaming,
// which forwards any call.
bool IsUnary(const std::string& method) {
  const size_t slash = method.rfind('/');
  if (method.size() < 3 || method[0] != '/' || slash == 0) return false;
  const std::string full_name =
      absl::StrCat(method.substr(1, slash - 1), ".", method.substr(slash + 1));
  const google::protobuf::MethodDescriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full_name);
  return descriptor != nullptr && !descriptor->client_streaming() &&
         !descriptor->server_streaming();
}

// Copies the leader's trailing metadata (retry-after) to the caller's call.
void PassTrailers(grpc::ClientContext& upstream, grpc::GenericCallbackServerContext& context) {
  for (const auto& [key, value] : upstream.GetServerTrailingMetadata()) {
    const absl::string_view name(key.data(), key.size());
    if (OwnedByGrpc(name)) continue;
    context.AddTrailingMetadata(std::string(name), std::string(value.data(), value.size()));
  }
}

}  // namespace

// Fails a call at once.
class LeaderForwarder::Refusal : public grpc::ServerGenericBidiReactor {
 public:
  Refusal(LeaderForwarder* forwarder, grpc::Status status) {
    forwarder->Ended(status.error_code());
    Finish(std::move(status));
  }
  void OnDone() override { delete this; }
};

// One forwarded call: the server side towards the client (this reactor)
// and the client side towards the leader (`upstream_`), one message in
// flight each way. Messages from the client are read one at a time and
// written to the leader; the leader's are read one at a time and written to
// the client. The upstream call ends (OnDone, with the leader's status,
// which finishes this side) only once no hold is left on it:
//  - the write hold, while this side may still start a write (or the
//    half-close) towards the leader. It goes when the client's half-close
//    was passed on, a write to the leader failed, or the leader ended its
//    side while no write to it was under way; `mu_` keeps the decision to
//    start a write and the release apart.
//  - a read hold during each write to the client, whose end starts the next
//    read from the leader.
// The object goes when both sides are done.
class LeaderForwarder::Call : public grpc::ServerGenericBidiReactor {
 public:
  Call(LeaderForwarder* forwarder, grpc::GenericCallbackServerContext* context,
       std::shared_ptr<grpc::GenericStub> stub)
      : forwarder_(forwarder),
        context_(context),
        stub_(std::move(stub)),
        upstream_context_(UpstreamContext(*context, forwarder->service_)),
        upstream_(this) {
    forwarder_->Remember(upstream_context_);
    stub_->PrepareBidiStreamingCall(upstream_context_.get(), context->method(),
                                    grpc::StubOptions(), &upstream_);
    upstream_.AddHold();  // the write hold
    upstream_.StartRead(&from_leader_);
    upstream_.StartCall();
    StartRead(&from_client_);
  }

  // Server side.
  void OnReadDone(bool ok) override {
    if (!StartWritingUpstream()) return;
    if (ok) {
      upstream_.StartWrite(&from_client_);
    } else {
      // The client half-closed (or went away): so does the upstream call.
      upstream_.StartWritesDone();
    }
  }
  void OnWriteDone(bool ok) override {
    if (ok) {
      upstream_.StartRead(&from_leader_);
    } else {
      upstream_context_->TryCancel();
    }
    upstream_.RemoveHold();  // the read hold
  }
  void OnCancel() override { upstream_context_->TryCancel(); }
  void OnDone() override { Release(); }

 private:
  class Upstream : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    explicit Upstream(Call* call) : call_(call) {}
    void OnReadDone(bool ok) override {
      if (!ok) {
        // The leader is done writing; OnDone brings its status.
        call_->LeaderDone();
        return;
      }
      AddHold();  // the read hold, until the message reached the client
      call_->StartWrite(&call_->from_leader_);
    }
    void OnWriteDone(bool ok) override { call_->WroteUpstream(ok); }
    void OnWritesDoneDone(bool) override { call_->WroteUpstream(false); }
    void OnDone(const grpc::Status& status) override { call_->UpstreamDone(status); }

   private:
    Call* const call_;
  };

  // Whether this side may start a write towards the leader (the write hold
  // is still there); if so, it is under way until WroteUpstream.
  bool StartWritingUpstream() {
    absl::MutexLock lock(&mu_);
    if (write_hold_released_) return false;
    writing_upstream_ = true;
    return true;
  }

  // A write (`more`: and the client may send more) towards the leader ended.
  void WroteUpstream(bool more) {
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      writing_upstream_ = false;
      release = !more || leader_done_;
      if (release) write_hold_released_ = true;
    }
    if (release) {
      upstream_.RemoveHold();
    } else {
      StartRead(&from_client_);
    }
  }

  void LeaderDone() {
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      leader_done_ = true;
      release = !writing_upstream_ && !write_hold_released_;
      if (release) write_hold_released_ = true;
    }
    if (release) upstream_.RemoveHold();
  }

  void UpstreamDone(const grpc::Status& status) {
    PassTrailers(*upstream_context_, *context_);
    grpc::Status ended = forwarder_->Outcome(status);
    forwarder_->Ended(ended.error_code());
    Finish(std::move(ended));
    Release();
  }

  // Each side calls this once, when done.
  void Release() {
    if (sides_done_.fetch_add(1) + 1 < 2) return;
    forwarder_->Forget(upstream_context_.get());
    delete this;
  }

  LeaderForwarder* const forwarder_;
  grpc::GenericCallbackServerContext* const context_;
  const std::shared_ptr<grpc::GenericStub> stub_;
  // Shared with the forwarder's list of calls, which Stop cancels.
  const std::shared_ptr<grpc::ClientContext> upstream_context_;
  Upstream upstream_;
  grpc::ByteBuffer from_client_;
  grpc::ByteBuffer from_leader_;
  absl::Mutex mu_;
  bool writing_upstream_ ABSL_GUARDED_BY(mu_) = false;
  bool leader_done_ ABSL_GUARDED_BY(mu_) = false;
  bool write_hold_released_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int> sides_done_{0};
};

// One forwarded call of a unary method: the request read, one unary call
// to the leader (a single batch, where Call takes a step per message and
// half-close each way), then the answer written with the status.
class LeaderForwarder::UnaryCall : public grpc::ServerGenericBidiReactor {
 public:
  UnaryCall(LeaderForwarder* forwarder, grpc::GenericCallbackServerContext* context,
            std::shared_ptr<grpc::GenericStub> stub)
      : forwarder_(forwarder),
        context_(context),
        stub_(std::move(stub)),
        upstream_context_(UpstreamContext(*context, forwarder->service_)) {
    forwarder_->Remember(upstream_context_);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The caller went away, or half-closed without its request.
      forwarder_->Ended(grpc::StatusCode::CANCELLED);
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the call ended before its request"));
      return;
    }
    stub_->UnaryCall(upstream_context_.get(), context_->method(), grpc::StubOptions(), &request_,
                     &response_, [this](grpc::Status status) { Answer(std::move(status)); });
  }
  void OnCancel() override { upstream_context_->TryCancel(); }
  void OnDone() override {
    forwarder_->Forget(upstream_context_.get());
    delete this;
  }

 private:
  void Answer(const grpc::Status& status) {
    PassTrailers(*upstream_context_, *context_);
    grpc::Status ended = forwarder_->Outcome(status);
    forwarder_->Ended(ended.error_code());
    if (ended.ok()) {
      StartWriteAndFinish(&response_, grpc::WriteOptions(), std::move(ended));
    } else {
      Finish(std::move(ended));
    }
  }

  LeaderForwarder* const forwarder_;
  grpc::GenericCallbackServerContext* const context_;
  const std::shared_ptr<grpc::GenericStub> stub_;
  const std::shared_ptr<grpc::ClientContext> upstream_context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
};

grpc::Status LeaderForwarder::Outcome(const grpc::Status& status) const {
  if (status.error_code() == grpc::StatusCode::CANCELLED && stopping()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        absl::StrCat("this ", service_,
                                     " standby is taking over as the leader; retry the call"));
  }
  return status;
}

LeaderForwarder::LeaderForwarder(std::string service, prometheus::Registry& registry,
                                 client::ChannelSecurity to_leader)
    : service_(std::move(service)),
      to_leader_(std::move(to_leader)),
      ended_(prometheus::BuildCounter()
                 .Name("switchboard_forwarded_calls_total")
                 .Help("Calls this standby passed to its leader, or refused because it could "
                       "not, by the code they ended with (the leader counts the forwarded "
                       "ones in grpc_server_handled_total too)")
                 .Register(registry)) {}

void LeaderForwarder::Ended(grpc::StatusCode code) {
  ended_.Add({{"grpc_code", std::string(metrics::GrpcCodeName(code))}}).Increment();
}

double LeaderForwarder::ended(grpc::StatusCode code) const {
  return ended_.Add({{"grpc_code", std::string(metrics::GrpcCodeName(code))}}).Value();
}

LeaderForwarder::~LeaderForwarder() = default;

void LeaderForwarder::Follow(const std::string& address) {
  absl::MutexLock lock(&mu_);
  if (address == address_) return;
  address_ = address;
  stubs_.clear();
  // Where this standby's calls go, for whoever reads its log after a
  // takeover elsewhere.
  log::Info("forwarding_to", {{"service", service_},
                              {"address", address.empty() ? "none published" : address}});
  if (address.empty()) return;
  for (int i = 0; i < kConnections; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    // The leader bounds its answers; the standby passes them on whole.
    args.SetMaxReceiveMessageSize(-1);
    // A leader restarting at the same address is found again within a
    // second, not after gRPC's default backoff of up to two minutes. (Not
    // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC takes it as the time a
    // connection may take to set up, and a busy leader's took longer than
    // a short one, failing every call waiting for it.)
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1'000);
    // A connection of its own for each (gRPC would share one otherwise).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("switchboard.forward_connection", i);
    stubs_.push_back(std::make_shared<grpc::GenericStub>(to_leader_.Channel(address, args)));
  }
}

void LeaderForwarder::Stop() {
  std::vector<std::shared_ptr<grpc::ClientContext>> in_flight;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    for (const auto& [_, context] : calls_) in_flight.push_back(context);
  }
  // Outside the lock: gRPC may run the calls' reactions (and Forget) on
  // this thread.
  for (const auto& context : in_flight) context->TryCancel();
}

bool LeaderForwarder::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

bool LeaderForwarder::WaitUntilIdle(absl::Duration limit) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(
                                  +[](absl::flat_hash_map<grpc::ClientContext*,
                                                          std::shared_ptr<grpc::ClientContext>>*
                                          calls) { return calls->empty(); },
                                  &calls_),
                              limit);
}

int64_t LeaderForwarder::forwarded() const {
  absl::MutexLock lock(&mu_);
  return forwarded_;
}

grpc::ServerGenericBidiReactor* LeaderForwarder::CreateReactor(
    grpc::GenericCallbackServerContext* context) {
  if (context->client_metadata().count(kForwardedBy) > 0) {
    return new Refusal(this, grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("a ", service_, " standby forwarded this call to another standby: the "
                     "leader's published address reaches a standby; set its "
                     "--advertise_address")));
  }
  absl::StatusOr<std::shared_ptr<grpc::GenericStub>> stub = NextStub();
  if (!stub.ok()) {
    return new Refusal(this, grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                    std::string(stub.status().message())));
  }
  // Outside the lock: the call's reactions may run on this thread.
  if (IsUnary(context->method())) return new UnaryCall(this, context, *std::move(stub));
  return new Call(this, context, *std::move(stub));
}

absl::StatusOr<std::shared_ptr<grpc::GenericStub>> LeaderForwarder::NextStub() {
  absl::MutexLock lock(&mu_);
  if (stopped_) {
    return absl::UnavailableError(
        absl::StrCat("this ", service_, " standby is taking over as the leader; retry the call"));
  }
  if (stubs_.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "no ", service_, " leader is serving yet (this process is a standby); retry the call"));
  }
  ++forwarded_;
  return stubs_[next_stub_++ % stubs_.size()];
}

void LeaderForwarder::Remember(std::shared_ptr<grpc::ClientContext> context) {
  absl::MutexLock lock(&mu_);
  grpc::ClientContext* key = context.get();
  calls_.emplace(key, std::move(context));
}

void LeaderForwarder::Forget(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  calls_.erase(context);
}

}  // namespace switchboard::host
