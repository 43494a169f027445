#include "libs/testing/postgres.h"

#include <fcntl.h>
#include <grp.h>
#include <postgresql/libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/testing/process.h"

namespace switchboard::testing {
namespace {

constexpr char kUser[] = "switchboard";
constexpr char kDatabase[] = "switchboard";

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "PostgresServer: %s\n", message.c_str());
  std::abort();
}

// The bin folder of the newest PostgreSQL under /usr/lib/postgresql.
std::string FindBinDir() {
  std::string best;
  int best_version = -1;
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator("/usr/lib/postgresql", error)) {
    int version = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &version)) continue;
    const std::string bin = entry.path().string() + "/bin";
    if (version > best_version && access((bin + "/postgres").c_str(), X_OK) == 0) {
      best = bin;
      best_version = version;
    }
  }
  if (best.empty()) {
    Fail("no PostgreSQL server under /usr/lib/postgresql/*/bin; run tools/setup.sh");
  }
  return best;
}

// Whom initdb and the server run as: the caller, or an unprivileged user
// when the caller is root (PostgreSQL refuses root).
struct RunAs {
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

RunAs PickUser() {
  RunAs run_as;
  if (geteuid() != 0) return run_as;
  for (const char* name : {"postgres", "nobody"}) {
    if (const passwd* user = getpwnam(name); user != nullptr) {
      run_as.drop = true;
      run_as.uid = user->pw_uid;
      run_as.gid = user->pw_gid;
      return run_as;
    }
  }
  Fail("running as root and neither user \"postgres\" nor \"nobody\" exists");
}

// Forks a child that becomes `run_as`, enters `dir`, sends its output to
// `log_path` and execs `argv`. With `die_with_parent`, the child gets
// SIGQUIT (PostgreSQL's immediate shutdown) when this thread ends; it is
// set after the change of user, which would clear it. Only async-signal-safe
// calls between fork and exec.
pid_t Spawn(const RunAs& run_as, const std::string& dir, const std::string& log_path,
            std::vector<std::string> argv, bool die_with_parent) {
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) Fail("fork failed");
  if (pid > 0) return pid;
  if (run_as.drop &&
      (setgroups(0, nullptr) != 0 || setgid(run_as.gid) != 0 || setuid(run_as.uid) != 0)) {
    _exit(126);
  }
  if (die_with_parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGQUIT) != 0) _exit(126);
    if (getppid() != parent) _exit(126);  // The parent died before prctl.
  }
  if (chdir(dir.c_str()) != 0) _exit(126);
  const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (log < 0) _exit(126);
  dup2(log, STDOUT_FILENO);
  dup2(log, STDERR_FILENO);
  close(log);
  execv(args[0], args.data());
  _exit(127);
}

// Runs one SQL command on `conninfo`'s database; "" or libpq's error.
std::string RunSql(const std::string& conninfo, const std::string& sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* result = PQexec(conn, sql.c_str());
    if (PQresultStatus(result) != PGRES_COMMAND_OK) error = PQresultErrorMessage(result);
    PQclear(result);
  }
  PQfinish(conn);
  return error;
}

}  // namespace

PostgresServer::PostgresServer() {
  const std::string bin = FindBinDir();
  const RunAs run_as = PickUser();

  // Not under TEST_TMPDIR: as root that is inside /root, which the server's
  // user cannot enter.
  char pattern[] = "/tmp/switchboard-postgres-XXXXXX";
  if (mkdtemp(pattern) == nullptr) Fail("mkdtemp under /tmp failed");
  dir_ = pattern;
  if (run_as.drop && chown(dir_.c_str(), run_as.uid, run_as.gid) != 0) {
    Fail(absl::StrCat("chown ", dir_, " failed"));
  }
  const std::string data = dir_ + "/data";

  // --no-sync skips only initdb's own final flush of a folder that dies with
  // the test; the server itself runs with fsync on.
  const pid_t initdb = Spawn(run_as, dir_, dir_ + "/initdb.log",
                             {bin + "/initdb", "-D", data, "-U", kUser, "--auth=trust",
                              "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"},
                             /*die_with_parent=*/false);
  int status = 0;
  if (waitpid(initdb, &status, 0) != initdb || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    Fail(absl::StrCat("initdb failed (exit ", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                      "):\n", ReadFile(dir_ + "/initdb.log")));
  }

  // The reserved port's holder never listens, so the server (which sets
  // SO_REUSEADDR) can bind it while no one else can.
  pid_ = Spawn(run_as, dir_, dir_ + "/postgres.log",
               {bin + "/postgres", "-D", data, "-k", dir_, "-h", "127.0.0.1", "-p",
                absl::StrCat(port_.port())},
               /*die_with_parent=*/true);

  const std::string admin = absl::StrCat("host=127.0.0.1 port=", port_.port(),
                                         " user=", kUser, " dbname=postgres connect_timeout=5");
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (PQping(admin.c_str()) != PQPING_OK) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      Fail(absl::StrCat("the server exited at start:\n", log()));
    }
    if (absl::Now() > give_up) {
      const std::string text = log();
      Stop();
      Fail(absl::StrCat("the server did not accept connections within 60 s:\n", text));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (const std::string error = RunSql(admin, absl::StrCat("CREATE DATABASE ", kDatabase));
      !error.empty()) {
    Stop();
    Fail(absl::StrCat("CREATE DATABASE failed: ", error));
  }
  uri_ = UriFor(kDatabase);
}

PostgresServer::~PostgresServer() { Stop(); }

std::string PostgresServer::UriFor(const std::string& database) const {
  return absl::StrCat("postgresql://", kUser, "@127.0.0.1:", port_.port(), "/", database);
}

std::string PostgresServer::CreateDatabase() {
  const std::string name = absl::StrCat("test_", ++databases_created_);
  if (const std::string error = RunSql(uri_, absl::StrCat("CREATE DATABASE ", name));
      !error.empty()) {
    Fail(absl::StrCat("CREATE DATABASE ", name, " failed: ", error));
  }
  return UriFor(name);
}

std::string PostgresServer::log() const { return ReadFile(dir_ + "/postgres.log"); }

void PostgresServer::Stop() {
  if (pid_ > 0) {
    // SIGQUIT: immediate shutdown. The folder is removed next, so the
    // checkpoint of a fast shutdown (seconds of fsyncs) would be wasted.
    kill(pid_, SIGQUIT);
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (waitpid(pid_, nullptr, WNOHANG) != pid_) {
      if (absl::Now() > give_up) {
        std::fprintf(stderr, "PostgresServer: no shutdown in 30 s; killing it\n");
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    pid_ = -1;
  }
  if (!dir_.empty()) {
    std::error_code error;
    std::filesystem::remove_all(dir_, error);
    dir_.clear();
  }
}

int64_t CountInSchema(const std::string& uri, const std::string& service,
                      const std::string& sql, const std::vector<storage::PostgresParam>& params) {
  absl::StatusOr<std::string> in_schema = storage::WithSchema(uri, service);
  if (!in_schema.ok()) return -1;
  auto db = storage::PostgresConnection::Open(*in_schema);
  if (!db.ok()) return -1;
  auto rows = (*db)->Query(sql, params);
  return rows.ok() && !rows->empty() ? rows->Int(0, 0) : -1;
}

}  // namespace switchboard::testing
