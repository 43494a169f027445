#include "libs/testing/postgres.h"

#include <postgresql/libpq-fe.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/time/clock.h"

#include "gtest/gtest.h"

namespace switchboard::testing {
namespace {

// The first column of the first row of `sql`, or libpq's error.
std::string QueryOne(const std::string& uri, const std::string& sql) {
  PGconn* conn = PQconnectdb(uri.c_str());
  std::string out;
  if (PQstatus(conn) != CONNECTION_OK) {
    out = std::string("connection failed: ") + PQerrorMessage(conn);
  } else {
    PGresult* result = PQexec(conn, sql.c_str());
    if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0) {
      out = PQgetvalue(result, 0, 0);
    } else if (PQresultStatus(result) == PGRES_COMMAND_OK) {
      out = "OK";
    } else {
      out = std::string("query failed: ") + PQresultErrorMessage(result);
    }
    PQclear(result);
  }
  PQfinish(conn);
  return out;
}

TEST(PostgresServerTest, ServesItsDatabaseOnLoopbackWithDebiansDefaults) {
  PostgresServer server;
  EXPECT_EQ(server.uri(), "postgresql://switchboard@127.0.0.1:" +
                              std::to_string(server.port()) + "/switchboard");
  EXPECT_EQ(QueryOne(server.uri(), "SELECT current_database()"), "switchboard");
  EXPECT_GE(std::stoi(QueryOne(server.uri(), "SHOW server_version_num")), 150000);
  EXPECT_EQ(QueryOne(server.uri(), "SHOW fsync"), "on");
  EXPECT_EQ(QueryOne(server.uri(), "SHOW listen_addresses"), "127.0.0.1");
  EXPECT_EQ(QueryOne(server.uri(), "CREATE TABLE t(id BIGINT PRIMARY KEY)"), "OK");
  EXPECT_EQ(QueryOne(server.uri(), "INSERT INTO t VALUES (1) RETURNING id"), "1");
}

TEST(PostgresServerTest, RunsAsAnUnprivilegedUser) {
  PostgresServer server;
  const std::string data = QueryOne(server.uri(), "SHOW data_directory");
  struct stat info;
  ASSERT_EQ(stat(data.c_str(), &info), 0) << data;
  if (geteuid() == 0) {
    EXPECT_NE(info.st_uid, 0u) << "the data folder belongs to root";
  } else {
    EXPECT_EQ(info.st_uid, geteuid());
  }
}

TEST(PostgresServerTest, CreateDatabaseGivesSeparateEmptyDatabases) {
  PostgresServer server;
  const std::string first = server.CreateDatabase();
  const std::string second = server.CreateDatabase();
  EXPECT_NE(first, second);
  EXPECT_EQ(QueryOne(first, "CREATE TABLE only_here(id INT)"), "OK");
  EXPECT_EQ(QueryOne(first, "SELECT COUNT(*) FROM only_here"), "0");
  EXPECT_NE(QueryOne(second, "SELECT COUNT(*) FROM only_here").find("does not exist"),
            std::string::npos);
}

TEST(PostgresServerTest, TwoServersRunSideBySide) {
  PostgresServer one;
  PostgresServer two;
  EXPECT_NE(one.port(), two.port());
  EXPECT_EQ(QueryOne(one.uri(), "SELECT 1"), "1");
  EXPECT_EQ(QueryOne(two.uri(), "SELECT 2"), "2");
}

TEST(PostgresServerTest, DestructionStopsTheServerAndRemovesItsFolder) {
  std::string uri;
  std::string data;
  {
    PostgresServer server;
    uri = server.uri();
    data = QueryOne(uri, "SHOW data_directory");
    ASSERT_EQ(access(data.c_str(), F_OK), 0);
  }
  EXPECT_EQ(PQping(uri.c_str()), PQPING_NO_RESPONSE);
  EXPECT_NE(access(data.c_str(), F_OK), 0) << data << " is still there";
}

TEST(PostgresServerTest, TheServerDiesWithTheProcessThatStartedIt) {
  // A child process starts a server and ends without its destructors (as a
  // crashing test would); it reports the server's URI and data folder first.
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipe_fds[0]);
    PostgresServer server;
    const std::string report =
        server.uri() + "\n" + QueryOne(server.uri(), "SHOW data_directory") + "\n";
    if (write(pipe_fds[1], report.data(), report.size()) < 0) _exit(1);
    _exit(0);
  }
  close(pipe_fds[1]);
  std::string report;
  char buffer[512];
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof buffer)) > 0;) report.append(buffer, n);
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  const size_t newline = report.find('\n');
  ASSERT_NE(newline, std::string::npos) << "the child reported nothing";
  const std::string uri = report.substr(0, newline);
  const std::string data = report.substr(newline + 1, report.size() - newline - 2);

  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (PQping(uri.c_str()) != PQPING_NO_RESPONSE && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(PQping(uri.c_str()), PQPING_NO_RESPONSE) << "the server outlived its test";
  // The folder stays behind (no destructor ran); this test removes it.
  std::error_code ignored;
  std::filesystem::remove_all(std::filesystem::path(data).parent_path(), ignored);
}

}  // namespace
}  // namespace switchboard::testing
