#include "libs/host/host.h"

#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/events/outbox.h"
#include "libs/events/postgres_outbox.h"
#include "libs/events/read_json_lines.h"
#include "libs/host/leader_lease.h"
#include "libs/storage/postgres.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/postgres.h"
#include "prometheus/text_serializer.h"

namespace switchboard::host {
namespace {

const std::vector<std::string>& Migrations() {
  static const auto* migrations = new std::vector<std::string>{events::kOutboxMigration};
  return *migrations;
}

ServiceInfo Info() {
  // The server names a service that is in the generated pool (its own health
  // service): this host serves no service of its own.
  return {"hosttest", "grpc.health.v1.Health", 0, 0, "test data", false};
}

// argv for ParseFlags: the program's name, then `args`.
class Args {
 public:
  explicit Args(std::vector<std::string> args) : strings_(std::move(args)) {
    strings_.insert(strings_.begin(), "hosttest");
    for (std::string& s : strings_) pointers_.push_back(s.data());
  }
  int argc() { return static_cast<int>(pointers_.size()); }
  char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> pointers_;
};

// What happened, in order.
class Trace {
 public:
  void Add(std::string what) {
    absl::MutexLock lock(&mu_);
    lines_.push_back(std::move(what));
  }
  std::vector<std::string> lines() const {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

// A part of the service that records its destruction.
struct Part {
  explicit Part(Trace* trace) : trace(trace) {}
  ~Part() { trace->Add("part destroyed"); }
  Trace* trace;
};

TEST(HostTest, BadFlagsExitWithTwoAndNameTheFlag) {
  Host host(Info());
  int lease = 1;
  host.flags().Add("lease", &lease, "a flag of the service's own");
  Args args({"--port=many"});
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(host.ParseFlags(args.argc(), args.argv()), 2);
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(printed.find("hosttest: "), std::string::npos) << printed;
  EXPECT_NE(printed.find("port"), std::string::npos) << printed;
}

TEST(HostTest, TheServicesOwnCheckFailsWithItsMessage) {
  Host host(Info());
  int lease = 1;
  host.flags().Add("lease", &lease, "a flag of the service's own");
  Args args({"--lease=0", "--port=0", "--metrics_port=0"});
  ::testing::internal::CaptureStderr();
  const std::optional<int> exit = host.ParseFlags(args.argc(), args.argv(), [&] {
    return lease < 1 ? absl::InvalidArgumentError("--lease must be at least 1")
                     : absl::OkStatus();
  });
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "hosttest: --lease must be at least 1\n");
  EXPECT_EQ(exit, 2);
}

TEST(HostTest, FailingToOpenTheDatabaseExitsWithOneAndNamesTheStep) {
  const std::string dir = storage::MakeTempDir();
  // The database's path is taken by a folder.
  std::filesystem::create_directories(dir + "/hosttest.db");
  Host host(Info());
  Args args({"--data_dir=" + dir});
  ASSERT_EQ(host.ParseFlags(args.argc(), args.argv()), std::nullopt);
  ASSERT_EQ(host.OpenKeys(), std::nullopt);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(host.OpenStore({Migrated(Migrations())}), 1);
  const std::string logged = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(logged.find("startup_failed"), std::string::npos) << logged;
  EXPECT_NE(logged.find("open_database"), std::string::npos) << logged;
}

TEST(HostTest, AKeyFolderThatIsAFileFailsAtTheKeysStep) {
  const std::string dir = storage::MakeTempDir();
  std::ofstream(dir + "/keys") << "not a folder";
  Host host(Info());
  Args args({"--data_dir=" + dir});
  ASSERT_EQ(host.ParseFlags(args.argc(), args.argv()), std::nullopt);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(host.OpenKeys(), 1);
  const std::string logged = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(logged.find("\"keys\""), std::string::npos) << logged;
}

// The stop order of a served host, seen from its parts: the server drains,
// then the service's own work stops, and a write that work makes while
// stopping is still committed and its event published by the relay's
// flush; the parts go last.
TEST(HostTest, SigtermStopsInOrderAndTheRelayFlushesWhatTheStopWrote) {
  const std::string dir = storage::MakeTempDir();
  Trace trace;
  {
    Host host(Info());
    Args args({"--data_dir=" + dir, "--port=0", "--metrics_port=0", "--bind_address=127.0.0.1"});
    ASSERT_EQ(host.ParseFlags(args.argc(), args.argv()), std::nullopt);
    ASSERT_EQ(host.OpenKeys(), std::nullopt);
    ASSERT_EQ(host.OpenStore({Migrated(Migrations())}), std::nullopt);
    host.Make<Part>(&trace);

    absl::Notification ran;
    std::atomic<int> runs{0};
    Periodic& periodic = host.Every(absl::Hours(1), [&] {
      if (runs++ == 0) ran.Notify();
    });
    // Runs at start, before its first interval has passed.
    std::atomic<int> first_runs{0};
    host.Every(absl::Hours(1), [&] { ++first_runs; }, /*run_first=*/true);
    std::thread stopper;
    host.OnServing([&] {
      trace.Add("serving");
      stopper = std::thread([&] {
        // Woken, the hourly task runs at once.
        periodic.Wake();
        ran.WaitForNotification();
        trace.Add("periodic ran");
        // To the process, as an operator sends it: whichever thread the
        // kernel picks (gRPC's global ones do not block it), Serve stops.
        kill(getpid(), SIGTERM);
      });
    });
    host.OnDrain([&] { trace.Add("drain"); });
    host.OnStop([&] {
      trace.Add("stop");
      absl::Status committed = host.committer().Commit([&](storage::Database& db) {
        events::v1::Event event;
        event.mutable_agent_status_changed()->set_agent_id("agent-1");
        if (absl::Status s = events::Seal(event, "hosttest", "agent-1", absl::Now()); !s.ok()) {
          return s;
        }
        return events::AppendToOutbox(db, host.topic(), event);
      });
      EXPECT_TRUE(committed.ok()) << committed;
      host.relay_notifier()();
    });
    EXPECT_EQ(host.Serve({}), 0);
    stopper.join();
    EXPECT_EQ(runs, 1);
    EXPECT_EQ(first_runs, 1);
  }
  EXPECT_EQ(trace.lines(), (std::vector<std::string>{"serving", "periodic ran", "drain", "stop",
                                                     "part destroyed"}));
  absl::StatusOr<std::vector<events::JsonLine>> published =
      events::ReadJsonLines(dir + "/events/hosttest.jsonl");
  ASSERT_TRUE(published.ok()) << published.status();
  ASSERT_EQ(published->size(), 1u);
  EXPECT_EQ((*published)[0].topic, "switchboard.hosttest.v1");
  EXPECT_EQ((*published)[0].key, "agent-1");
}

TEST(HostTest, TheGroupCommitShowsItsCommitsInTheMetrics) {
  Host host(Info());
  Args args({"--data_dir=" + storage::MakeTempDir(), "--port=0", "--metrics_port=0",
             "--bind_address=127.0.0.1"});
  ASSERT_EQ(host.ParseFlags(args.argc(), args.argv()), std::nullopt);
  ASSERT_EQ(host.OpenStore({Migrated(Migrations())}), std::nullopt);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(host.committer().Commit([](storage::Database&) { return absl::OkStatus(); }).ok());
  }
  ASSERT_TRUE(host.committer()
                  .Commit([](storage::Database&) { return absl::OkStatus(); },
                          storage::GroupCommitter::Durability::kDeferred)
                  .ok());
  const std::string metrics = prometheus::TextSerializer().Serialize(host.registry().Collect());
  EXPECT_TRUE(absl::StrContains(metrics, "switchboard_storage_commits_total{fsync=\"true\"} 3"))
      << metrics;
  EXPECT_TRUE(absl::StrContains(metrics, "switchboard_storage_commits_total{fsync=\"false\"} 1"));
  EXPECT_TRUE(absl::StrContains(metrics, "switchboard_storage_writes_total 4"));
  EXPECT_TRUE(absl::StrContains(metrics, "switchboard_storage_commit_seconds_count 4"));
  // The deferred batch had no sync to time.
  EXPECT_TRUE(absl::StrContains(metrics, "switchboard_storage_sync_seconds_count 3"));
}

TEST(HostTest, WalCheckpointsShowInTheMetrics) {
  Host host(Info());
  Args args({"--data_dir=" + storage::MakeTempDir(), "--port=0", "--metrics_port=0",
             "--bind_address=127.0.0.1"});
  ASSERT_EQ(host.ParseFlags(args.argc(), args.argv()), std::nullopt);
  StoreOptions options{Migrated(Migrations())};
  options.commits.checkpoint_frames = 1;  // a checkpoint after every commit
  ASSERT_EQ(host.OpenStore(options), std::nullopt);
  ASSERT_TRUE(host.committer()
                  .Commit([](storage::Database& db) {
                    return db.Execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)");
                  })
                  .ok());
  // The checkpoint thread reports after the write's answer: wait for it.
  const std::string done =
      "switchboard_storage_checkpoints_total{by=\"background\",result=\"ok\"} 1";
  std::string metrics;
  for (int i = 0; i < 500 && !absl::StrContains(metrics, done); ++i) {
    if (i > 0) absl::SleepFor(absl::Milliseconds(10));
    metrics = prometheus::TextSerializer().Serialize(host.registry().Collect());
  }
  EXPECT_TRUE(absl::StrContains(metrics, done)) << metrics;
  EXPECT_TRUE(absl::StrContains(
      metrics, "switchboard_storage_checkpoint_seconds_count{by=\"background\"} 1"));
  EXPECT_TRUE(absl::StrContains(
      metrics, "switchboard_storage_checkpoints_total{by=\"writer\",result=\"ok\"} 0"));
}

TEST(HostTest, ADatabaseFlagThatIsNeitherEmptyNorPostgresIsRefused) {
  Host host(Info());
  Args args({"--database=/var/lib/hosttest.db"});
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(host.ParseFlags(args.argc(), args.argv()), 2);
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(printed.find("hosttest: --database"), std::string::npos) << printed;
}

// A service whose store has no PostgreSQL implementation refuses a
// PostgreSQL --database (here from the environment, as deployments set
// it) instead of quietly using its SQLite file.
TEST(HostTest, AServiceWithoutAPostgresStoreRefusesAPostgresDatabase) {
  const std::string dir = storage::MakeTempDir();
  setenv("SWITCHBOARD_HOSTTEST_DATABASE", "postgresql://app:secret@db.invalid/app", 1);
  Host host(Info());
  Args args({"--data_dir=" + dir});
  const std::optional<int> parsed = host.ParseFlags(args.argc(), args.argv());
  unsetenv("SWITCHBOARD_HOSTTEST_DATABASE");
  ASSERT_EQ(parsed, std::nullopt);
  EXPECT_TRUE(host.on_postgres());
  ASSERT_EQ(host.OpenKeys(), std::nullopt);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(host.OpenStore({Migrated(Migrations())}), 2);
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(printed.find("hosttest: --database=postgresql://...: the hosttest service has no "
                         "PostgreSQL store"),
            std::string::npos)
      << printed;
  EXPECT_EQ(printed.find("secret"), std::string::npos) << printed;
  EXPECT_FALSE(std::filesystem::exists(dir + "/hosttest.db"));
}

// On PostgreSQL the host migrates the database, its ordered writer commits
// there, and its relay publishes what was appended to the shared outbox (by
// that writer or another connection) to the configured sink.
TEST(HostTest, OnPostgresTheRelayPublishesTheSharedOutbox) {
  testing::PostgresServer server;
  const std::string uri = server.CreateDatabase();
  const std::string dir = storage::MakeTempDir();
  static const auto* migrations =
      new std::vector<std::string>{events::kPostgresOutboxMigration};
  {
    Host host(Info());
    Args args({"--data_dir=" + dir, "--database=" + uri});
    ASSERT_EQ(host.ParseFlags(args.argc(), args.argv()), std::nullopt);
    ASSERT_EQ(host.OpenKeys(), std::nullopt);
    StoreOptions options;
    options.postgres_migrations = migrations;
    ASSERT_EQ(host.OpenStore(std::move(options)), std::nullopt);
    EXPECT_EQ(host.database_uri(), *storage::WithSchema(uri, "hosttest"));

    auto writer = storage::PostgresConnection::Open(host.database_uri());
    ASSERT_TRUE(writer.ok()) << writer.status();
    events::v1::Event event;
    event.mutable_agent_status_changed()->set_agent_id("agent-1");
    ASSERT_TRUE(events::Seal(event, "hosttest", "agent-1", absl::Now()).ok());
    ASSERT_TRUE(events::AppendToOutbox(**writer, host.topic(), event).ok());
    event.mutable_agent_status_changed()->set_agent_id("agent-2");
    ASSERT_TRUE(events::Seal(event, "hosttest", "agent-2", absl::Now()).ok());
    ASSERT_TRUE(host.postgres_committer()
                    .Commit([&](storage::PostgresConnection& db) {
                      return events::AppendToOutbox(db, host.topic(), event);
                    })
                    .ok());
    host.relay_notifier()();
    for (int i = 0; i < 100; ++i) {
      auto rows = (*writer)->Query("SELECT COUNT(*) FROM outbox");
      ASSERT_TRUE(rows.ok()) << rows.status();
      if (rows->Int(0, 0) == 0) break;
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  absl::StatusOr<std::vector<events::JsonLine>> published =
      events::ReadJsonLines(dir + "/events/hosttest.jsonl");
  ASSERT_TRUE(published.ok()) << published.status();
  ASSERT_EQ(published->size(), 2u);
  EXPECT_EQ((*published)[0].key, "agent-1");
  EXPECT_EQ((*published)[1].key, "agent-2");
  EXPECT_FALSE(std::filesystem::exists(dir + "/hosttest.db"));
}

// A host of a service that runs as leader and standbys (one_process).
struct Opened {
  std::optional<int> exit;
  std::unique_ptr<Host> host;
};
Opened OpenOneProcess(const std::string& uri, ServiceInfo info = Info()) {
  static const auto* migrations = new std::vector<std::string>{
      "CREATE TABLE things(id TEXT PRIMARY KEY)", events::kPostgresOutboxMigration};
  Opened opened{std::nullopt, std::make_unique<Host>(std::move(info))};
  Args args({"--data_dir=" + storage::MakeTempDir(), "--database=" + uri,
             "--metrics_port=0", "--bind_address=127.0.0.1"});
  EXPECT_EQ(opened.host->ParseFlags(args.argc(), args.argv()), std::nullopt);
  EXPECT_EQ(opened.host->OpenKeys(), std::nullopt);
  StoreOptions options;
  options.postgres_migrations = migrations;
  options.one_process = true;
  // The keeper would end this test's process once a host is deposed; the
  // cases below depose one on purpose and look at its committer.
  options.leader_check_interval = absl::Hours(1);
  opened.exit = opened.host->OpenStore(std::move(options));
  return opened;
}

absl::Status InsertThing(Host& host, const std::string& id) {
  return host.postgres_committer().Commit([&](storage::PostgresConnection& db) {
    return db.Query("INSERT INTO things(id) VALUES ($1)", {id}).status();
  });
}

// Ends the database session that holds `service`'s advisory lock, as a
// network partition or a PostgreSQL restart would; the process goes on.
void DropLockSession(const std::string& uri, const std::string& service) {
  auto db = storage::PostgresConnection::Open(uri);
  ASSERT_TRUE(db.ok()) << db.status();
  const uint64_t key = static_cast<uint64_t>(OneProcessLockKey(service));
  auto ended = (*db)->Query(
      "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
      "AND classid = $1::oid AND objid = $2::oid AND objsubid = 1",
      {static_cast<int64_t>(key >> 32), static_cast<int64_t>(key & 0xffffffffu)});
  ASSERT_TRUE(ended.ok()) << ended.status();
  ASSERT_EQ(ended->size(), 1);
}

int64_t LeaseEpoch(const std::string& uri) {
  return testing::CountInSchema(uri, "hosttest", "SELECT epoch FROM leader_lease");
}

// StoreOptions::one_process: while one process leads, a second one of the
// same service waits as a standby (OpenStore does not return); another
// service is not affected; once the leader is gone, the standby takes over
// with the next epoch.
TEST(HostTest, OnPostgresASecondProcessWaitsAsAStandbyAndTakesOver) {
  testing::PostgresServer server;
  const std::string uri = server.CreateDatabase();
  Opened first = OpenOneProcess(uri);
  ASSERT_EQ(first.exit, std::nullopt);
  EXPECT_EQ(LeaseEpoch(uri), 1);
  ASSERT_TRUE(InsertThing(*first.host, "from-first").ok());

  Opened second;
  std::atomic<bool> second_opened{false};
  std::thread standby([&] {
    second = OpenOneProcess(uri);
    second_opened = true;
  });
  absl::SleepFor(absl::Seconds(1));
  EXPECT_FALSE(second_opened);
  // Another service's lock is another key.
  ServiceInfo other = Info();
  other.name = "othertest";
  EXPECT_EQ(OpenOneProcess(uri, other).exit, std::nullopt);
  EXPECT_FALSE(second_opened);

  const absl::Time gone = absl::Now();
  first.host.reset();
  standby.join();
  std::printf("standby took over %.0f ms after the leader stopped\n",
              absl::ToDoubleMilliseconds(absl::Now() - gone));
  ASSERT_EQ(second.exit, std::nullopt);
  EXPECT_EQ(LeaseEpoch(uri), 2);
  EXPECT_TRUE(InsertThing(*second.host, "from-second").ok());
  EXPECT_EQ(testing::CountInSchema(uri, "hosttest", "SELECT COUNT(*) FROM things"), 2);
}

// SIGTERM ends a standby's wait promptly, as a clean stop (exit 0).
TEST(HostTest, OnPostgresSigtermEndsAStandbysWait) {
  testing::PostgresServer server;
  const std::string uri = server.CreateDatabase();
  Opened leader = OpenOneProcess(uri);
  ASSERT_EQ(leader.exit, std::nullopt);
  Opened standby;
  std::atomic<bool> opened{false};
  std::thread waiting([&] {
    standby = OpenOneProcess(uri);
    opened = true;
  });
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_FALSE(opened);
  const absl::Time sent = absl::Now();
  kill(getpid(), SIGTERM);
  waiting.join();
  EXPECT_EQ(standby.exit, 0);
  EXPECT_LT(absl::Now() - sent, absl::Seconds(1));
  EXPECT_EQ(LeaseEpoch(uri), 1);
}

// A leader that lost its lock (its session ended while the process runs
// on, as in a partition) and was taken over from commits nothing more: its
// committer's batches fail the epoch fence, while the new leader's commit.
TEST(HostTest, OnPostgresADeposedLeadersWritesFailTheFence) {
  testing::PostgresServer server;
  const std::string uri = server.CreateDatabase();
  Opened first = OpenOneProcess(uri);
  ASSERT_EQ(first.exit, std::nullopt);
  ASSERT_TRUE(InsertThing(*first.host, "before").ok());

  Opened second;
  std::thread standby([&] { second = OpenOneProcess(uri); });
  absl::SleepFor(absl::Milliseconds(500));
  DropLockSession(uri, "hosttest");
  standby.join();
  ASSERT_EQ(second.exit, std::nullopt);
  EXPECT_EQ(LeaseEpoch(uri), 2);

  const absl::Status deposed = InsertThing(*first.host, "after");
  EXPECT_EQ(deposed.code(), absl::StatusCode::kFailedPrecondition) << deposed;
  EXPECT_EQ(deposed.message(),
            "deposed: another hosttest process took over the PostgreSQL database (epoch 2)");
  EXPECT_TRUE(InsertThing(*second.host, "from-second").ok());
  EXPECT_EQ(testing::CountInSchema(uri, "hosttest", "SELECT COUNT(*) FROM things"), 2);
  EXPECT_EQ(testing::CountInSchema(uri, "hosttest",
                                   "SELECT COUNT(*) FROM things WHERE id = 'after'"),
            0);
}

// A takeover waits for the batch the old leader has in flight (it holds the
// lease row FOR SHARE): that batch commits, and the new leader, which loads
// after it took the lease, sees it.
TEST(HostTest, OnPostgresATakeoverWaitsForTheBatchInFlight) {
  testing::PostgresServer server;
  const std::string uri = server.CreateDatabase();
  Opened first = OpenOneProcess(uri);
  ASSERT_EQ(first.exit, std::nullopt);
  absl::Notification writing;
  absl::Notification release;
  absl::Notification committed;
  absl::Status in_flight;
  first.host->postgres_committer().Submit(
      [&](storage::PostgresConnection& db) {
        writing.Notify();
        release.WaitForNotification();
        return db.Query("INSERT INTO things(id) VALUES ('in-flight')").status();
      },
      [&](absl::Status status) {
        in_flight = std::move(status);
        committed.Notify();
      });
  writing.WaitForNotification();

  Opened second;
  std::atomic<bool> second_opened{false};
  std::thread standby([&] {
    second = OpenOneProcess(uri);
    second_opened = true;
  });
  DropLockSession(uri, "hosttest");
  absl::SleepFor(absl::Seconds(1));
  // It has the advisory lock but waits to bump the epoch.
  EXPECT_FALSE(second_opened);
  release.Notify();
  committed.WaitForNotification();
  EXPECT_TRUE(in_flight.ok()) << in_flight;
  standby.join();
  ASSERT_EQ(second.exit, std::nullopt);
  EXPECT_EQ(LeaseEpoch(uri), 2);
  EXPECT_EQ(testing::CountInSchema(uri, "hosttest",
                                   "SELECT COUNT(*) FROM things WHERE id = 'in-flight'"),
            1);
}

// A leader's connections (and a standby's) ask the server to probe a
// silent client, so that a vanished node's lock goes within seconds; other
// services' connections keep the server's defaults.
TEST(HostTest, OnPostgresALeadersConnectionsLetTheServerNoticeAVanishedNode) {
  testing::PostgresServer server;
  const std::string uri = server.CreateDatabase();
  Opened leader = OpenOneProcess(uri);
  ASSERT_EQ(leader.exit, std::nullopt);
  auto settings_of = [](const std::string& database_uri) -> std::string {
    auto db = storage::PostgresConnection::Open(database_uri);
    if (!db.ok()) return db.status().ToString();
    absl::StatusOr<storage::PostgresRows> rows = (*db)->Query(
        "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings "
        "WHERE name LIKE 'tcp\\_%'");
    return rows.ok() ? rows->Text(0, 0) : rows.status().ToString();
  };
  EXPECT_EQ(settings_of(leader.host->database_uri()),
            "tcp_keepalives_count=3 tcp_keepalives_idle=5 tcp_keepalives_interval=1 "
            "tcp_user_timeout=8000");
  EXPECT_EQ(settings_of(*storage::WithSchema(uri, "hosttest")), settings_of(uri));
  EXPECT_NE(settings_of(uri), settings_of(leader.host->database_uri()));
}

// The lock `key` as `other` finds it once no other session holds it, or
// after 5 s: a closed session ends on the server a moment after its client
// closed it, and until then the lock is still that session's.
LeaseLook::Lock LockOnceLetGo(storage::PostgresConnection& other, int64_t key) {
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (true) {
    absl::StatusOr<LeaseLook> look = LookAtLease(other, key);
    EXPECT_TRUE(look.ok()) << look.status();
    if (!look.ok()) return LeaseLook::Lock::kTakenByAnother;
    if (look->lock != LeaseLook::Lock::kTakenByAnother || absl::Now() >= give_up) {
      return look->lock;
    }
  }
}

// The keeper's look, on real sessions: the leader's own session holds the
// lock; a new session (after a lost connection) takes it again when it is
// free, and sees it taken when another process holds it.
TEST(HostTest, OnPostgresTheKeeperSeesWhoHoldsTheLock) {
  testing::PostgresServer server;
  const std::string uri = server.CreateDatabase();
  Opened leader = OpenOneProcess(uri);
  ASSERT_EQ(leader.exit, std::nullopt);
  const std::string in_schema = *storage::WithSchema(uri, "hosttest");
  auto other = storage::PostgresConnection::Open(in_schema);
  ASSERT_TRUE(other.ok()) << other.status();
  const int64_t key = OneProcessLockKey("hosttest");

  absl::StatusOr<LeaseLook> look = LookAtLease(**other, key);
  ASSERT_TRUE(look.ok()) << look.status();
  EXPECT_EQ(look->lock, LeaseLook::Lock::kTakenByAnother);
  EXPECT_EQ(look->epoch, 1);

  leader.host.reset();
  EXPECT_EQ(LockOnceLetGo(**other, key), LeaseLook::Lock::kRetaken);
  look = LookAtLease(**other, key);
  ASSERT_TRUE(look.ok()) << look.status();
  EXPECT_EQ(look->lock, LeaseLook::Lock::kHeld);
}

// A leader stopped by SIGTERM lets go of its lock at the end of its ordered
// stop, before the Host (its parts, the server's metrics endpoint) is
// destroyed: a standby takes over while the old process is still ending.
TEST(HostTest, OnPostgresASigtermedLeaderLetsGoOfItsLockBeforeItIsDestroyed) {
  testing::PostgresServer server;
  const std::string uri = server.CreateDatabase();
  Opened leader = OpenOneProcess(uri);
  ASSERT_EQ(leader.exit, std::nullopt);
  std::thread stopper;
  leader.host->OnServing([&] { stopper = std::thread([] { kill(getpid(), SIGTERM); }); });
  EXPECT_EQ(leader.host->Serve({}), 0);
  stopper.join();

  auto other = storage::PostgresConnection::Open(*storage::WithSchema(uri, "hosttest"));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(LockOnceLetGo(**other, OneProcessLockKey("hosttest")), LeaseLook::Lock::kRetaken);
}

TEST(HostTest, TheKeeperCarriesOnOnlyWhileTheEpochIsItsOwn) {
  using Lock = LeaseLook::Lock;
  EXPECT_EQ(Judge(LeaseLook{Lock::kHeld, 3}, 3), Leadership::kKept);
  // A PostgreSQL restart, nobody took over.
  EXPECT_EQ(Judge(LeaseLook{Lock::kRetaken, 3}, 3), Leadership::kRetaken);
  // Someone took over and went while our connection was down.
  EXPECT_EQ(Judge(LeaseLook{Lock::kRetaken, 4}, 3), Leadership::kLost);
  EXPECT_EQ(Judge(LeaseLook{Lock::kTakenByAnother, 3}, 3), Leadership::kLost);
  EXPECT_EQ(Judge(LeaseLook{Lock::kTakenByAnother, 4}, 3), Leadership::kLost);
  // Cannot happen with the lock held, but the epoch decides.
  EXPECT_EQ(Judge(LeaseLook{Lock::kHeld, 4}, 3), Leadership::kLost);
  EXPECT_EQ(Judge(absl::UnavailableError("connection lost"), 3), Leadership::kUnknown);
}

// Services sharing one database (as the Helm chart and tools/run.sh
// --postgres run them) each migrate a schema of their own: the same table
// names, migration versions and outbox never meet.
TEST(HostTest, OnPostgresEachServiceHasASchemaOfItsOwn) {
  testing::PostgresServer server;
  const std::string uri = server.CreateDatabase();
  static const auto* migrations = new std::vector<std::string>{
      "CREATE TABLE things(id TEXT PRIMARY KEY)", events::kPostgresOutboxMigration};
  std::vector<std::unique_ptr<Host>> hosts;
  for (const char* name : {"hosttest", "othertest"}) {
    ServiceInfo info = Info();
    info.name = name;
    hosts.push_back(std::make_unique<Host>(std::move(info)));
    Args args({"--data_dir=" + storage::MakeTempDir(), "--database=" + uri});
    ASSERT_EQ(hosts.back()->ParseFlags(args.argc(), args.argv()), std::nullopt);
    ASSERT_EQ(hosts.back()->OpenKeys(), std::nullopt);
    StoreOptions options;
    options.postgres_migrations = migrations;
    ASSERT_EQ(hosts.back()->OpenStore(std::move(options)), std::nullopt);
  }
  auto db = storage::PostgresConnection::Open(uri);
  ASSERT_TRUE(db.ok()) << db.status();
  auto tables = (*db)->Query(
      "SELECT schemaname || '.' || tablename FROM pg_tables WHERE tablename IN "
      "('things', 'outbox', 'schema_migrations') ORDER BY 1");
  ASSERT_TRUE(tables.ok()) << tables.status();
  std::vector<std::string> names;
  for (int i = 0; i < tables->size(); ++i) names.push_back(tables->Text(i, 0));
  EXPECT_EQ(names, (std::vector<std::string>{
                       "hosttest.outbox", "hosttest.schema_migrations", "hosttest.things",
                       "othertest.outbox", "othertest.schema_migrations", "othertest.things"}));
}

TEST(HostTest, TheOneProcessLockKeyIsTheServicesNameInEightBytes) {
  EXPECT_EQ(OneProcessLockKey("sessions"), 0x73625f7365737369);  // "sb_sessi"
  EXPECT_EQ(OneProcessLockKey("routing"), 0x73625f726f757469);   // "sb_routi"
  EXPECT_EQ(OneProcessLockKey("bot"), 0x73625f626f740000);       // "sb_bot" and two NULs
}

}  // namespace
}  // namespace switchboard::host
