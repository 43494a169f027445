#pragma once

#include <array>

#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "switchboard/common/v1/common.pb.h"

namespace switchboard::identity {

// Why a CompleteVerification attempt ended as it did (the `outcome` label).
enum class Outcome {
  kSucceeded = 0,
  kWrongCode,
  kExpired,
  kAttemptsExhausted,
  kChallengeUsed,
  kCodeReused,
  kCount,
};

// Every domain metric of the identity service, created once. No label holds
// a customer id, a code or a contact.
struct IdentityMetrics {
  explicit IdentityMetrics(prometheus::Registry& registry);

  prometheus::Counter& outcome(common::v1::VerificationMethod method, Outcome outcome) {
    return *outcomes[MethodIndex(method)][static_cast<int>(outcome)];
  }
  prometheus::Counter& started(common::v1::VerificationMethod method) {
    return *challenges_started[MethodIndex(method)];
  }
  static int MethodIndex(common::v1::VerificationMethod method);

  // switchboard_identity_verifications_total{method,outcome}: completion
  // attempts on existing challenges, by method and outcome.
  std::array<std::array<prometheus::Counter*, static_cast<int>(Outcome::kCount)>, 3>
      outcomes{};
  // switchboard_identity_challenges_started_total{method}.
  std::array<prometheus::Counter*, 3> challenges_started{};
  // switchboard_identity_lockouts_total{scope}: customers (scope customer)
  // and sources (scope source) locked out.
  prometheus::Counter* lockouts;
  prometheus::Counter* source_lockouts;
  // switchboard_identity_rate_limited_total{call}: calls refused by a rate
  // limit or lockout, or (customer_busy) by the cap on one customer's calls
  // in progress.
  prometheus::Counter* rate_limited_start;
  prometheus::Counter* rate_limited_complete;
  prometheus::Counter* rate_limited_enrollment;
  prometheus::Counter* rate_limited_busy;
  // switchboard_identity_code_delivery_failures_total.
  prometheus::Counter* delivery_failures;
  // switchboard_identity_totp_enrollments_total.
  prometheus::Counter* totp_enrollments;
  // switchboard_identity_account_changes_total{step}: supervisors' changes
  // of contacts and authenticators requested, confirmed early by the
  // customer, cancelled (or superseded) and applied.
  prometheus::Counter* changes_requested;
  prometheus::Counter* changes_confirmed;
  prometheus::Counter* changes_cancelled;
  prometheus::Counter* changes_applied;
};

}  // namespace switchboard::identity
