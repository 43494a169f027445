// Every server binary starts and fails the way libs/host promises: bad
// flags exit 2 naming the flag, a database that cannot be opened exits 1
// with startup_failed naming the step, a PostgreSQL --database is used
// (never ignored), and nothing is served.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"

namespace switchboard {
namespace {

struct Exit {
  // The exit code, or -1 if the process died of a signal or ran past 60 s.
  int code = -1;
  std::string log;
};

// Runs the server `name` with `args` to its end; its stderr is the log.
Exit RunToEnd(const std::string& name, std::vector<std::string> args, const std::string& dir) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string path =
      absl::StrCat(srcdir ? srcdir : ".", "/switchboard/services/", name, "/", name, "_server");
  const std::string log_path = absl::StrCat(dir, "/", name, ".log");
  args.insert(args.begin(), path);
  const pid_t pid = fork();
  if (pid == 0) {
    const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(log, STDERR_FILENO);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  Exit exit;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) != pid) {
    if (absl::Now() > give_up) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      exit.log = testing::ReadFile(log_path);
      return exit;
    }
    usleep(20'000);
  }
  if (WIFEXITED(status)) exit.code = WEXITSTATUS(status);
  exit.log = testing::ReadFile(log_path);
  return exit;
}

class HostProcessTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HostProcessTest, ADatabaseThatCannotBeOpenedExitsOneNamingTheStep) {
  const std::string dir = storage::MakeTempDir();
  // The database's path is taken by a folder.
  std::filesystem::create_directories(absl::StrCat(dir, "/", GetParam(), ".db"));
  const Exit exit = RunToEnd(GetParam(),
                             {"--data_dir=" + dir, "--port=0", "--metrics_port=0",
                              "--bind_address=127.0.0.1"},
                             dir);
  EXPECT_EQ(exit.code, 1) << exit.log;
  EXPECT_NE(exit.log.find("\"event\":\"startup_failed\""), std::string::npos) << exit.log;
  EXPECT_NE(exit.log.find("\"step\":\"open_database\""), std::string::npos) << exit.log;
  EXPECT_EQ(exit.log.find("server_started"), std::string::npos) << exit.log;
}

TEST_P(HostProcessTest, ABadFlagExitsTwoNamingIt) {
  const std::string dir = storage::MakeTempDir();
  const Exit exit = RunToEnd(GetParam(), {"--data_dir=" + dir, "--worker_threads=many"}, dir);
  EXPECT_EQ(exit.code, 2) << exit.log;
  EXPECT_NE(exit.log.find(GetParam() + ": "), std::string::npos) << exit.log;
  EXPECT_NE(exit.log.find("worker_threads"), std::string::npos) << exit.log;
  EXPECT_FALSE(std::filesystem::exists(absl::StrCat(dir, "/", GetParam(), ".db")))
      << "a server opened its database although its flags were bad";
}

// --database=postgresql://...: every service has a PostgreSQL store, so each
// tries that database (here one that refuses connections), exits 1 at
// open_database and never falls back to its SQLite file.
TEST_P(HostProcessTest, APostgresDatabaseIsUsedNeverIgnored) {
  const std::string dir = storage::MakeTempDir();
  const Exit exit = RunToEnd(GetParam(),
                             {"--data_dir=" + dir, "--port=0", "--metrics_port=0",
                              "--bind_address=127.0.0.1",
                              "--database=postgresql://switchboard@127.0.0.1:1/switchboard"},
                             dir);
  EXPECT_EQ(exit.code, 1) << exit.log;
  EXPECT_NE(exit.log.find("\"step\":\"open_database\""), std::string::npos) << exit.log;
  EXPECT_EQ(exit.log.find("server_started"), std::string::npos) << exit.log;
  EXPECT_FALSE(std::filesystem::exists(absl::StrCat(dir, "/", GetParam(), ".db")));
}

INSTANTIATE_TEST_SUITE_P(EveryServer, HostProcessTest,
                         ::testing::Values("sessions", "routing", "bot", "presence", "identity",
                                           "feedback"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace switchboard
