#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace switchboard::auth {

// Who may call what: a customer sees only their own data, an agent what is
// assigned to them, a supervisor everything; services call each other with
// kService, each named and each admitted only where its RPC's policy names
// it (proto/switchboard/auth/v1/access.proto).
enum class Role { kCustomer, kAgent, kSupervisor, kService };

// "customer", "agent", "supervisor" or "service": the form used in tokens,
// flags and error messages.
absl::string_view RoleName(Role role);

// The inverse of RoleName; nullopt for anything else (matching is exact and
// case-sensitive).
std::optional<Role> ParseRole(absl::string_view name);

// An authenticated caller, as its token names it: a person with their role,
// or (role kService) a Switchboard service by name, e.g. "routing".
struct Principal {
  std::string subject;
  Role role;
  absl::Time expires_at;
};

// The longest subject a token may name, in bytes.
inline constexpr size_t kMaxSubjectBytes = 128;

}  // namespace switchboard::auth
