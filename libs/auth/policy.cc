#include "libs/auth/policy.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace switchboard::auth {
namespace {

constexpr absl::string_view kServicePrefix = "SERVICE_";

std::optional<Role> RoleOf(v1::Role role) {
  switch (role) {
    case v1::ROLE_CUSTOMER:
      return Role::kCustomer;
    case v1::ROLE_AGENT:
      return Role::kAgent;
    case v1::ROLE_SUPERVISOR:
      return Role::kSupervisor;
    default:
      return std::nullopt;
  }
}

}  // namespace

std::string ServiceName(v1::Service service) {
  if (service == v1::SERVICE_UNSPECIFIED || !v1::Service_IsValid(service)) return "";
  absl::string_view name = v1::Service_Name(service);
  if (absl::StartsWith(name, kServicePrefix)) name.remove_prefix(kServicePrefix.size());
  return absl::AsciiStrToLower(name);
}

std::vector<std::string> ServiceNames() {
  std::vector<std::string> names;
  const google::protobuf::EnumDescriptor* services = v1::Service_descriptor();
  for (int i = 0; i < services->value_count(); ++i) {
    std::string name = ServiceName(static_cast<v1::Service>(services->value(i)->number()));
    if (!name.empty()) names.push_back(std::move(name));
  }
  return names;
}

bool MethodAccess::Admits(const Principal& principal) const {
  if (principal.role == Role::kService) {
    return std::find(services.begin(), services.end(), principal.subject) != services.end();
  }
  return std::find(roles.begin(), roles.end(), principal.role) != roles.end();
}

absl::StatusOr<ServicePolicy> ServicePolicy::Read(
    const google::protobuf::ServiceDescriptor& service) {
  ServicePolicy policy;
  policy.service_name_ = service.full_name();
  for (int i = 0; i < service.method_count(); ++i) {
    const google::protobuf::MethodDescriptor& method = *service.method(i);
    if (!method.options().HasExtension(v1::access)) {
      return absl::FailedPreconditionError(absl::StrCat(
          method.full_name(), " has no (switchboard.auth.v1.access) option: every RPC must say "
                              "who may call it"));
    }
    const v1::Access& access = method.options().GetExtension(v1::access);
    MethodAccess rules;
    for (int role : access.roles()) {
      if (std::optional<Role> known = RoleOf(static_cast<v1::Role>(role))) {
        rules.roles.push_back(*known);
      }
    }
    for (int service_value : access.services()) {
      std::string name = ServiceName(static_cast<v1::Service>(service_value));
      if (!name.empty()) rules.services.push_back(std::move(name));
    }
    if (rules.roles.empty() && rules.services.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(method.full_name(), ": its access option admits no one"));
    }
    policy.methods_[method.name()] = std::move(rules);
  }
  return policy;
}

const ServicePolicy& ServicePolicy::Of(absl::string_view full_name) {
  static absl::Mutex mu;
  static auto* policies = new absl::flat_hash_map<std::string, std::unique_ptr<ServicePolicy>>();
  absl::MutexLock lock(&mu);
  auto it = policies->find(full_name);
  if (it != policies->end()) return *it->second;
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          std::string(full_name));
  if (service == nullptr) {
    std::fprintf(stderr, "auth policy: service %s is not compiled into this binary\n",
                 std::string(full_name).c_str());
    std::abort();
  }
  absl::StatusOr<ServicePolicy> policy = Read(*service);
  if (!policy.ok()) {
    std::fprintf(stderr, "auth policy: %s\n", std::string(policy.status().message()).c_str());
    std::abort();
  }
  auto [inserted, unused] = policies->emplace(
      std::string(full_name), std::make_unique<ServicePolicy>(*std::move(policy)));
  return *inserted->second;
}

const MethodAccess* ServicePolicy::Find(absl::string_view method) const {
  auto it = methods_.find(method);
  return it == methods_.end() ? nullptr : &it->second;
}

absl::Status ServicePolicy::Authorize(const Principal& principal, absl::string_view method) const {
  const MethodAccess* access = Find(method);
  if (access != nullptr && access->Admits(principal)) return absl::OkStatus();
  if (principal.role == Role::kService) {
    return absl::PermissionDeniedError(
        absl::StrCat("service ", principal.subject, " may not call ", method));
  }
  return absl::PermissionDeniedError(
      absl::StrCat("role ", RoleName(principal.role), " may not call ", method));
}

}  // namespace switchboard::auth
