#include "libs/auth/principal.h"

namespace switchboard::auth {

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kCustomer:
      return "customer";
    case Role::kAgent:
      return "agent";
    case Role::kSupervisor:
      return "supervisor";
    case Role::kService:
      return "service";
  }
  return "unknown";
}

std::optional<Role> ParseRole(absl::string_view name) {
  for (Role role : {Role::kCustomer, Role::kAgent, Role::kSupervisor, Role::kService}) {
    if (name == RoleName(role)) return role;
  }
  return std::nullopt;
}

}  // namespace switchboard::auth
