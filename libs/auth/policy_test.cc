#include "libs/auth/policy.h"

#include "absl/strings/match.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"

namespace switchboard::auth {
namespace {

using google::protobuf::FileDescriptorProto;

// A service built at run time, so that tests can give RPCs any option (or
// none) without a proto file per case.
class PolicyTest : public ::testing::Test {
 protected:
  PolicyTest() : pool_(google::protobuf::DescriptorPool::generated_pool()) {}

  google::protobuf::MethodDescriptorProto* AddMethod(FileDescriptorProto& file,
                                                     const std::string& name) {
    google::protobuf::MethodDescriptorProto* method = file.mutable_service(0)->add_method();
    method->set_name(name);
    method->set_input_type(".google.protobuf.Empty");
    method->set_output_type(".google.protobuf.Empty");
    return method;
  }
  FileDescriptorProto File(const std::string& name) {
    FileDescriptorProto file;
    file.set_name(name + ".proto");
    file.set_package("test");
    file.set_syntax("proto3");
    file.add_dependency("google/protobuf/empty.proto");
    file.add_service()->set_name(name);
    return file;
  }
  const google::protobuf::ServiceDescriptor& Build(const FileDescriptorProto& file) {
    const google::protobuf::FileDescriptor* built = pool_.BuildFile(file);
    EXPECT_NE(built, nullptr);
    return *built->service(0);
  }

  google::protobuf::DescriptorPool pool_;
};

TEST_F(PolicyTest, ReadsRolesAndServices) {
  FileDescriptorProto file = File("Desk");
  v1::Access* open = AddMethod(file, "Open")->mutable_options()->MutableExtension(v1::access);
  open->add_roles(v1::ROLE_CUSTOMER);
  open->add_roles(v1::ROLE_SUPERVISOR);
  AddMethod(file, "Assign")
      ->mutable_options()
      ->MutableExtension(v1::access)
      ->add_services(v1::SERVICE_ROUTING);
  absl::StatusOr<ServicePolicy> policy = ServicePolicy::Read(Build(file));
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->service_name(), "test.Desk");

  const absl::Time t = absl::InfiniteFuture();
  EXPECT_TRUE(policy->Authorize({"c1", Role::kCustomer, t}, "Open").ok());
  EXPECT_TRUE(policy->Authorize({"s1", Role::kSupervisor, t}, "Open").ok());
  absl::Status agent = policy->Authorize({"a1", Role::kAgent, t}, "Open");
  EXPECT_EQ(agent.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(agent.message(), "role agent may not call Open");
  EXPECT_FALSE(policy->Authorize({"routing", Role::kService, t}, "Open").ok());

  EXPECT_TRUE(policy->Authorize({"routing", Role::kService, t}, "Assign").ok());
  absl::Status bot = policy->Authorize({"bot", Role::kService, t}, "Assign");
  EXPECT_EQ(bot.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(bot.message(), "service bot may not call Assign");
  EXPECT_FALSE(policy->Authorize({"s1", Role::kSupervisor, t}, "Assign").ok());
  // Unknown methods are refused, not waved through.
  EXPECT_EQ(policy->Authorize({"s1", Role::kSupervisor, t}, "Other").code(),
            absl::StatusCode::kPermissionDenied);
  ASSERT_NE(policy->Find("Assign"), nullptr);
  EXPECT_EQ(policy->Find("Assign")->services, std::vector<std::string>{"routing"});
}

TEST_F(PolicyTest, EveryRpcMustSayWhoMayCallIt) {
  FileDescriptorProto file = File("Leaky");
  AddMethod(file, "Fine")->mutable_options()->MutableExtension(v1::access)->add_roles(
      v1::ROLE_AGENT);
  AddMethod(file, "Forgotten");
  absl::StatusOr<ServicePolicy> policy = ServicePolicy::Read(Build(file));
  EXPECT_EQ(policy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(policy.status().message(), "test.Leaky.Forgotten"))
      << policy.status();

  FileDescriptorProto nobody = File("Nobody");
  AddMethod(nobody, "Empty")->mutable_options()->MutableExtension(v1::access);
  EXPECT_TRUE(absl::StrContains(ServicePolicy::Read(Build(nobody)).status().message(),
                                "admits no one"));
}

TEST(ServiceNameTest, NamesFollowTheEnum) {
  EXPECT_EQ(ServiceName(v1::SERVICE_ROUTING), "routing");
  EXPECT_EQ(ServiceName(v1::SERVICE_UNSPECIFIED), "");
  EXPECT_EQ(ServiceName(v1::SERVICE_ACCOUNTS), "accounts");
  EXPECT_EQ(ServiceNames(), (std::vector<std::string>{"sessions", "routing", "bot", "presence",
                                                      "identity", "feedback", "accounts"}));
}

}  // namespace
}  // namespace switchboard::auth
