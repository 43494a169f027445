#include "libs/testing/test_certificates.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "libs/storage/test_dir.h"

namespace switchboard::testing {

TestCertificates::TestCertificates(const std::vector<std::string>& names)
    : dir_(storage::MakeTempDir() + "/pki") {
  Add(names);
}

void TestCertificates::Add(const std::vector<std::string>& names) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string script =
      absl::StrCat(srcdir != nullptr ? srcdir : ".", "/switchboard/tools/dev_certs.sh");
  std::string command = absl::StrCat("bash '", script, "' '", dir_, "'");
  for (const std::string& name : names) absl::StrAppend(&command, " '", name, "'");
  absl::StrAppend(&command, " >/dev/null");
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "TestCertificates: `%s` failed (is openssl installed?)\n",
                 command.c_str());
    std::abort();
  }
}

}  // namespace switchboard::testing
