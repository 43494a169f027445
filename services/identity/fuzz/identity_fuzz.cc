// Fuzzes the identity logic (Identity) the way IdentityService drives it:
// each input is a sequence of calls (identity_fuzz.proto) against a fresh
// SQLite store in a temporary folder, a fake clock and a fake code gateway.
// The adapter's checks (a customer acts for themselves; a customer's
// enrollment and confirmation of an account change take a verification
// token of theirs; a supervisor's contact change waits as an account
// change) are applied as the service applies them.
//
// Beyond "no crash, no leak, no undefined behaviour", it checks that bad
// input gets a client error (never INTERNAL or UNKNOWN); that every token
// CompleteVerification issues verifies, for the challenge's customer and
// session, and ValidateToken accepts it; that a supervisor's change waits
// for its whole cool-down unless someone confirms it; that a customer sees
// only their own changes; and that everything reads back the same after a
// restart.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/token.h"
#include "libs/auth/verification_token.h"
#include "libs/clock/clock.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/test_tokens.h"
#include "prometheus/registry.h"
#include "services/identity/fuzz/identity_fuzz.pb.h"
#include "services/identity/identity.h"
#include "services/identity/sqlite_store.h"
#include "services/identity/totp.h"
#include "third_party/fuzzing/calls.h"

namespace switchboard::identity {
namespace {

using fuzzing::Check;
using fuzzing::CheckServed;

constexpr size_t kMaxCalls = 48;

// Identity's verification key and a verifier, made once: a fresh key pair
// per input would cost more than the input.
const testing::TestTokens& Tokens() {
  static const auto* tokens = new testing::TestTokens("identity");
  return *tokens;
}

// The code gateway: remembers what it delivered, verification codes by
// challenge and account change notices' codes by change.
class Gateway : public CodeNotifier {
 public:
  absl::Status Deliver(const v1::CodeDeliveryRequest& request) override {
    absl::MutexLock lock(&mu_);
    if (down_) return absl::UnavailableError("gateway down");
    if (request.has_account_change()) {
      codes_[request.account_change().change_id()] = request.code();
    } else {
      codes_[request.challenge_id()] = request.code();
    }
    return absl::OkStatus();
  }
  std::string CodeFor(const std::string& challenge_or_change_id) {
    absl::MutexLock lock(&mu_);
    auto it = codes_.find(challenge_or_change_id);
    return it == codes_.end() ? "" : it->second;
  }
  void set_down(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::string> codes_ ABSL_GUARDED_BY(mu_);
  bool down_ ABSL_GUARDED_BY(mu_) = false;
};

std::string Base32Decode(absl::string_view text) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const int value = c >= 'A' && c <= 'Z' ? c - 'A' : c - '2' + 26;
    buffer = (buffer << 5) | (value & 31);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

class Harness {
 public:
  Harness()
      : path_(storage::MakeTempDir() + "/identity.db"),
        metrics_(registry_),
        hasher_(std::string(32, 'h')),
        box_(std::string(32, 's')) {
    Open();
  }
  ~Harness() {
    Close();
    std::filesystem::remove_all(std::filesystem::path(path_).parent_path());
  }

  void Run(const fuzz::Call& call) {
    clock_.Advance(absl::Seconds(std::min<uint32_t>(call.advance_seconds(), 24 * 3600)));
    gateway_.set_down(call.gateway_down());
    static constexpr const char* kPrefix[] = {"cust-", "sup-", "svc-"};
    const int role = call.role() >= 0 && call.role() <= 2 ? call.role() : 0;
    const bool customer = role == fuzz::CUSTOMER;
    const std::string self = absl::StrCat(kPrefix[role], call.caller() % 3);
    // IdentityService::Source: a customer's address, or a proxy's header.
    const std::string source =
        customer || call.has_source() ? absl::StrCat("10.0.0.", call.source() % 3) : "";
    // A verification token in a request: "mint" is the last one issued.
    auto token_of = [&](const std::string& token) {
      return token == "mint" && !issued_.empty() ? issued_.back() : token;
    };
    const std::string change =
        call.has_change() && !changes_.empty() ? changes_[call.change() % changes_.size()] : "";
    // IdentityService::TargetCustomer: empty when the adapter refuses.
    auto target = [&](const std::string& requested) -> std::string {
      if (customer) return requested.empty() || requested == self ? self : "";
      return requested;
    };
    switch (call.request_case()) {
      case fuzz::Call::kStartVerification: {
        if (role == fuzz::SUPERVISOR) break;
        const v1::StartVerificationRequest& r = call.start_verification();
        const std::string id = target(r.customer_id());
        if (id.empty()) break;
        auto started = identity_->StartVerification(
            {id, r.method(), r.session_id(), r.language(), r.request_id(), source});
        CheckServed(started.status(), "StartVerification");
        if (started.ok()) {
          challenges_.push_back(started->challenge.challenge_id);
          challenge_owner_[started->challenge.challenge_id] = {id, r.session_id()};
        }
        break;
      }
      case fuzz::Call::kCompleteVerification: {
        if (role == fuzz::SUPERVISOR) break;
        const v1::CompleteVerificationRequest& r = call.complete_verification();
        const std::string challenge =
            call.has_challenge() && !challenges_.empty()
                ? challenges_[call.challenge() % challenges_.size()]
                : r.challenge_id();
        std::string code = r.code();
        if (code == "delivered") code = gateway_.CodeFor(challenge);
        if (code == "totp") code = TotpNow(challenge_owner_[challenge].first);
        auto completed = identity_->CompleteVerification(customer ? self : "", challenge, code,
                                                         r.request_id(), source);
        CheckServed(completed.status(), "CompleteVerification");
        if (completed.ok()) CheckToken(*completed, challenge);
        break;
      }
      case fuzz::Call::kValidateToken: {
        if (customer) break;
        const v1::ValidateTokenRequest& r = call.validate_token();
        const std::string token = token_of(r.verification_token());
        if (token.empty() || token.size() > auth::kMaxTokenBytes ||
            !common::v1::VerificationLevel_IsValid(r.min_level())) {
          break;  // the adapter refuses
        }
        CheckVerificationToken(Tokens().verifier(), token, r.customer_id(), r.session_id(),
                               r.min_level(), clock_.Now());
        break;
      }
      case fuzz::Call::kRegisterContact: {
        if (customer) break;
        const v1::RegisterContactRequest& r = call.register_contact();
        if (role == fuzz::SUPERVISOR) {
          absl::StatusOr<Identity::ContactChange> requested = identity_->RequestContactChange(
              r.customer_id(), r.method(), r.address(), self, r.language());
          CheckServed(requested.status(), "RequestContactChange");
          if (requested.ok() && requested->pending.has_value()) Pending(*requested->pending);
          break;
        }
        CheckServed(
            identity_->RegisterContact(r.customer_id(), r.method(), r.address(), self).status(),
            "RegisterContact");
        break;
      }
      case fuzz::Call::kStartTotpEnrollment: {
        const v1::StartTotpEnrollmentRequest& r = call.start_totp_enrollment();
        const std::string id = target(r.customer_id());
        if (id.empty()) break;
        std::optional<int> proof;
        if (customer) {
          // The adapter: a customer proves who they are with a token.
          absl::StatusOr<auth::VerificationClaims> claims = auth::VerifyVerificationToken(
              Tokens().verifier(), token_of(r.verification_token()), clock_.Now());
          if (!claims.ok() || claims->customer_id != id) break;
          proof = claims->level;
        }
        auto started = identity_->StartTotpEnrollment(id, r.account_label(), self, proof,
                                                      r.request_id(),
                                                      role == fuzz::SUPERVISOR);
        CheckServed(started.status(), "StartTotpEnrollment");
        if (started.ok()) {
          enrollments_.push_back(started->enrollment.enrollment_id);
          enrollment_secret_[started->enrollment.enrollment_id] = {
              id, Base32Decode(started->secret_base32)};
        }
        break;
      }
      case fuzz::Call::kConfirmTotpEnrollment: {
        const v1::ConfirmTotpEnrollmentRequest& r = call.confirm_totp_enrollment();
        const std::string enrollment =
            call.has_enrollment() && !enrollments_.empty()
                ? enrollments_[call.enrollment() % enrollments_.size()]
                : r.enrollment_id();
        std::string code = r.code();
        auto secret = enrollment_secret_.find(enrollment);
        if (code == "totp" && secret != enrollment_secret_.end()) {
          code = Hotp(secret->second.second, TotpStep(clock_.Now()), 6);
        }
        auto confirmed = identity_->ConfirmTotpEnrollment(customer ? self : "", enrollment, code,
                                                          r.request_id(), r.language());
        CheckServed(confirmed.status(), "ConfirmTotpEnrollment");
        if (confirmed.ok() && confirmed->pending.has_value()) {
          Pending(*confirmed->pending);
          break;
        }
        if (confirmed.ok() && secret != enrollment_secret_.end()) {
          totp_secret_[secret->second.first] = secret->second.second;
        }
        break;
      }
      case fuzz::Call::kListAccountChanges: {
        const std::string id = target(call.list_account_changes().customer_id());
        if (id.empty()) break;  // the adapter refuses
        absl::StatusOr<std::vector<AccountChangeRecord>> listed =
            identity_->ListAccountChanges(id);
        CheckServed(listed.status(), "ListAccountChanges");
        if (!listed.ok()) break;
        Check(listed->size() <= static_cast<size_t>(kMaxListedChanges),
              "ListAccountChanges lists more than its maximum");
        for (const AccountChangeRecord& record : *listed) {
          Check(record.customer_id == id,
                absl::StrCat("ListAccountChanges of ", id, " lists a change of ",
                             record.customer_id));
          CheckCoolDown(record);
        }
        break;
      }
      case fuzz::Call::kConfirmAccountChange: {
        const v1::ConfirmAccountChangeRequest& r = call.confirm_account_change();
        const std::string id = change.empty() ? r.change_id() : change;
        std::string code = r.code();
        if (code == "notified") code = gateway_.CodeFor(id);
        std::optional<int> level;
        const std::string token = token_of(r.verification_token());
        if (!token.empty()) {
          // The adapter: customers only, with a token of theirs.
          if (!customer || token.size() > auth::kMaxTokenBytes) break;
          absl::StatusOr<auth::VerificationClaims> claims =
              auth::VerifyVerificationToken(Tokens().verifier(), token, clock_.Now());
          if (!claims.ok() || claims->customer_id != self) break;
          level = claims->level;
        }
        absl::StatusOr<AccountChangeRecord> confirmed =
            identity_->ConfirmAccountChange(customer ? self : "", id, code, level, self);
        CheckServed(confirmed.status(), "ConfirmAccountChange");
        if (confirmed.ok()) {
          Check(!customer || confirmed->customer_id == self,
                "a customer confirmed another customer's change");
          CheckCoolDown(*confirmed);
        }
        break;
      }
      case fuzz::Call::kCancelAccountChange: {
        const std::string id = change.empty() ? call.cancel_account_change().change_id() : change;
        absl::StatusOr<AccountChangeRecord> cancelled =
            identity_->CancelAccountChange(customer ? self : "", id, self);
        CheckServed(cancelled.status(), "CancelAccountChange");
        if (cancelled.ok()) {
          Check(!customer || cancelled->customer_id == self,
                "a customer cancelled another customer's change");
          CheckCoolDown(*cancelled);
        }
        break;
      }
      case fuzz::Call::kApplyDueChanges:
        CheckServed(identity_->ApplyDueChanges().status(), "ApplyDueChanges");
        break;
      case fuzz::Call::kSweep:
        CheckServed(identity_->Sweep().status(), "Sweep");
        break;
      case fuzz::Call::REQUEST_NOT_SET:
        break;
    }
  }

  // What was written reads back the same after a restart.
  void Finish() {
    std::map<std::string, std::vector<std::string>> before;
    for (const std::string& customer : customers_) {
      before[customer] = ChangesOf(customer);
    }
    Close();
    Open();
    for (const auto& [customer, changes] : before) {
      Check(ChangesOf(customer) == changes,
            absl::StrCat("the account changes of ", customer, " differ after a restart"));
    }
  }

 private:
  void Open() {
    db_ = *storage::Database::OpenMigrated({path_}, IdentityMigrations());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqliteIdentityStore>(committer_.get(), path_,
                                                   "switchboard.identity.v1", nullptr);
    identity_ = std::make_unique<Identity>(store_.get(), &clock_, &metrics_, &hasher_, &box_,
                                           &Tokens().verification_signer(), &gateway_,
                                           IdentityOptions());
  }

  // A supervisor's change just made: it waits for the whole cool-down.
  void Pending(const AccountChangeRecord& change) {
    Check(change.state == ChangeState::kPending, "a supervisor's change applied at once");
    Check(change.effective_at - change.requested_at >=
              IdentityOptions().account_change_cooldown,
          absl::StrCat("change ", change.change_id, " takes effect before its cool-down"));
    changes_.push_back(change.change_id);
    customers_.insert(change.customer_id);
  }

  // A change applied because its cool-down passed did not apply early.
  static void CheckCoolDown(const AccountChangeRecord& change) {
    if (change.resolution != v1::ACCOUNT_CHANGE_RESOLUTION_COOLDOWN_PASSED) return;
    Check(change.state == ChangeState::kApplied && change.resolved_at >= change.effective_at,
          absl::StrCat("change ", change.change_id, " applied before its cool-down ended"));
  }

  // What ListAccountChanges shows of `customer`, one line per change.
  std::vector<std::string> ChangesOf(const std::string& customer) {
    absl::StatusOr<std::vector<AccountChangeRecord>> listed =
        identity_->ListAccountChanges(customer);
    Check(listed.ok(), absl::StrCat("ListAccountChanges of ", customer, " fails"));
    std::vector<std::string> lines;
    for (const AccountChangeRecord& c : *listed) {
      lines.push_back(absl::StrCat(c.change_id, " ", static_cast<int>(c.method), " ",
                                   static_cast<int>(c.state),
                                   " ", c.resolution, " ", c.resolved_by, " ",
                                   absl::FormatTime(c.effective_at), " ", c.code_attempts));
    }
    return lines;
  }

  void Close() {
    identity_.reset();
    committer_->Stop();
    store_.reset();
    committer_.reset();
    db_.reset();
  }

  std::string TotpNow(const std::string& customer) {
    auto it = totp_secret_.find(customer);
    return it == totp_secret_.end() ? "" : Hotp(it->second, TotpStep(clock_.Now()), 6);
  }

  // A token identity issued is for the challenge's customer and session,
  // and passes ValidateToken's checks.
  void CheckToken(const Identity::Completed& completed, const std::string& challenge) {
    const auto& [customer, session] = challenge_owner_[challenge];
    absl::StatusOr<auth::VerificationClaims> claims =
        auth::VerifyVerificationToken(Tokens().verifier(), completed.token, clock_.Now());
    Check(claims.ok(), "an issued verification token does not verify");
    Check(claims->customer_id == customer && claims->session_id == session,
          absl::StrCat("token for ", claims->customer_id, "/", claims->session_id,
                       " from a challenge of ", customer, "/", session));
    TokenCheck check = CheckVerificationToken(
        Tokens().verifier(), completed.token, customer, session,
        common::v1::VERIFICATION_LEVEL_UNSPECIFIED, clock_.Now());
    Check(check.reason == v1::INVALID_TOKEN_REASON_UNSPECIFIED,
          "ValidateToken refuses a token identity just issued");
    issued_.push_back(completed.token);
  }

  const std::string path_;
  prometheus::Registry registry_;
  IdentityMetrics metrics_;
  CodeHasher hasher_;
  SecretBox box_;
  FakeClock clock_;
  Gateway gateway_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteIdentityStore> store_;
  std::unique_ptr<Identity> identity_;
  std::vector<std::string> challenges_;
  std::map<std::string, std::pair<std::string, std::string>> challenge_owner_;
  std::vector<std::string> enrollments_;
  std::map<std::string, std::pair<std::string, std::string>> enrollment_secret_;
  std::map<std::string, std::string> totp_secret_;
  std::vector<std::string> issued_;
  // Account changes made, and their customers.
  std::vector<std::string> changes_;
  std::set<std::string> customers_;
};

}  // namespace
}  // namespace switchboard::identity

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using switchboard::identity::fuzz::Call;
  const std::vector<Call> calls =
      switchboard::fuzzing::ReadCalls<Call>(data, size, switchboard::identity::kMaxCalls);
  if (calls.empty()) return 0;
  switchboard::identity::Harness harness;
  for (const Call& call : calls) harness.Run(call);
  harness.Finish();
  return 0;
}
