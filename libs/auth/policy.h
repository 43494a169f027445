#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "libs/auth/principal.h"
#include "switchboard/auth/v1/access.pb.h"

namespace switchboard::auth {

// The name a service token gives `service` ("routing" for SERVICE_ROUTING);
// empty for SERVICE_UNSPECIFIED.
std::string ServiceName(v1::Service service);

// The names of the services that hold a service key, in the enum's order:
// Switchboard's six, then the exchange's account system ("accounts").
std::vector<std::string> ServiceNames();

// Who may call one RPC: its (switchboard.auth.v1.access) option.
struct MethodAccess {
  // Roles of access tokens (never kService).
  std::vector<Role> roles;
  // Names of the services whose service tokens are admitted.
  std::vector<std::string> services;

  bool Admits(const Principal& principal) const;
};

// The access rules of every RPC of one gRPC service, read from the option
// each RPC carries in its proto (proto/switchboard/auth/v1/access.proto).
// Immutable; thread-safe.
class ServicePolicy {
 public:
  // Reads every method of `service`. FailedPrecondition naming the first
  // RPC without the option, or whose option names no one.
  static absl::StatusOr<ServicePolicy> Read(const google::protobuf::ServiceDescriptor& service);

  // The policy of the service named `full_name` (e.g.
  // "switchboard.bot.v1.BotService") in the generated descriptor pool.
  // The protos are compiled into the binary, so a missing service or RPC
  // option is a build mistake: it aborts with a message naming the RPC
  // (the authorization matrix test catches it before any release). The
  // result lives forever.
  static const ServicePolicy& Of(absl::string_view full_name);

  // OK if `method` (its short name, e.g. "AssignAgent") admits
  // `principal`; otherwise PermissionDenied naming the method and the
  // caller ("role agent may not call AssignAgent", "service bot may not
  // call AssignAgent"). An unknown method is refused the same way.
  absl::Status Authorize(const Principal& principal, absl::string_view method) const;

  // The rules of `method`, or null.
  const MethodAccess* Find(absl::string_view method) const;

  const std::string& service_name() const { return service_name_; }

 private:
  std::string service_name_;
  absl::flat_hash_map<std::string, MethodAccess> methods_;
};

}  // namespace switchboard::auth
