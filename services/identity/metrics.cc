#include "services/identity/metrics.h"

namespace switchboard::identity {
namespace {

constexpr const char* kMethods[] = {"email_otp", "sms_otp", "totp"};
constexpr const char* kOutcomes[] = {"succeeded",          "wrong_code",
                                     "expired",            "attempts_exhausted",
                                     "challenge_used",     "code_reused"};

}  // namespace

int IdentityMetrics::MethodIndex(common::v1::VerificationMethod method) {
  switch (method) {
    case common::v1::VERIFICATION_METHOD_SMS_OTP:
      return 1;
    case common::v1::VERIFICATION_METHOD_TOTP:
      return 2;
    default:
      return 0;
  }
}

IdentityMetrics::IdentityMetrics(prometheus::Registry& registry) {
  auto& outcome_family =
      prometheus::BuildCounter()
          .Name("switchboard_identity_verifications_total")
          .Help("CompleteVerification attempts on existing challenges, by method "
                "(email_otp, sms_otp, totp) and outcome: succeeded, wrong_code, "
                "expired, attempts_exhausted, challenge_used (used or replaced), "
                "code_reused (a TOTP code accepted before). Calls refused by a "
                "lockout or for unknown challenges are not counted here.")
          .Register(registry);
  auto& started_family =
      prometheus::BuildCounter()
          .Name("switchboard_identity_challenges_started_total")
          .Help("Verification challenges created by StartVerification, by method "
                "(refusals by rate limit or lockout are not counted).")
          .Register(registry);
  for (int m = 0; m < 3; ++m) {
    challenges_started[m] = &started_family.Add({{"method", kMethods[m]}});
    for (int o = 0; o < static_cast<int>(Outcome::kCount); ++o) {
      outcomes[m][o] =
          &outcome_family.Add({{"method", kMethods[m]}, {"outcome", kOutcomes[o]}});
    }
  }
  auto& lockout_family =
      prometheus::BuildCounter()
          .Name("switchboard_identity_lockouts_total")
          .Help("Lockouts from verification after too many failed attempts within the "
                "counting window, by scope: customer (one customer) or source (one client "
                "address, across customers).")
          .Register(registry);
  lockouts = &lockout_family.Add({{"scope", "customer"}});
  source_lockouts = &lockout_family.Add({{"scope", "source"}});
  auto& limited = prometheus::BuildCounter()
                      .Name("switchboard_identity_rate_limited_total")
                      .Help("Calls refused with RESOURCE_EXHAUSTED by a rate limit "
                            "or a lockout, by call: start_verification, "
                            "complete_verification, start_totp_enrollment; and "
                            "calls of any kind refused because their customer "
                            "already had too many calls in progress "
                            "(call=customer_busy).")
                      .Register(registry);
  rate_limited_start = &limited.Add({{"call", "start_verification"}});
  rate_limited_complete = &limited.Add({{"call", "complete_verification"}});
  rate_limited_enrollment = &limited.Add({{"call", "start_totp_enrollment"}});
  rate_limited_busy = &limited.Add({{"call", "customer_busy"}});
  delivery_failures = &prometheus::BuildCounter()
                           .Name("switchboard_identity_code_delivery_failures_total")
                           .Help("One-time codes the notifier failed to hand over "
                                 "for email or SMS delivery.")
                           .Register(registry)
                           .Add({});
  totp_enrollments = &prometheus::BuildCounter()
                          .Name("switchboard_identity_totp_enrollments_total")
                          .Help("Authenticator apps enrolled (confirmed enrollments).")
                          .Register(registry)
                          .Add({});
  auto& changes =
      prometheus::BuildCounter()
          .Name("switchboard_identity_account_changes_total")
          .Help("Supervisors' changes of customers' contacts and authenticators, by step: "
                "requested (pending, customer notified), confirmed (early, by the customer), "
                "cancelled (by the customer or staff, or superseded) and applied (in "
                "effect, after the cool-down or on confirmation).")
          .Register(registry);
  changes_requested = &changes.Add({{"step", "requested"}});
  changes_confirmed = &changes.Add({{"step", "confirmed"}});
  changes_cancelled = &changes.Add({{"step", "cancelled"}});
  changes_applied = &changes.Add({{"step", "applied"}});
}

}  // namespace switchboard::identity
