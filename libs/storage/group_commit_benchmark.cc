// Measures group commit on a real file with synchronous=FULL: for 1, 8 and
// 64 writer threads, each calling GroupCommitter::Commit with one INSERT in
// a loop for a fixed time, prints writes/s and writes per commit.
//
//   bazel run -c opt //libs/storage:group_commit_benchmark [-- SECONDS]
//
// One writer pays one fsync per write; more writers share each fsync, which
// is the point of group commit. Figures depend on the disk's fsync latency.

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/test_dir.h"

namespace switchboard::storage {
namespace {

int RunOnce(const std::string& dir, int writers, absl::Duration duration) {
  const std::string path = absl::StrCat(dir, "/bench-", writers, ".db");
  Database::Options options;
  options.path = path;
  options.synchronous_full = true;
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
  if (!db.ok()) {
    fprintf(stderr, "open: %s\n", db.status().ToString().c_str());
    return 1;
  }
  absl::Status migrated = (*db)->Migrate(
      {"CREATE TABLE events(id INTEGER PRIMARY KEY, writer INTEGER, "
       "payload BLOB)"});
  if (!migrated.ok()) {
    fprintf(stderr, "migrate: %s\n", migrated.ToString().c_str());
    return 1;
  }

  std::atomic<int64_t> failures{0};
  const std::string payload(200, 'x');  // About one small event.
  absl::Time start;
  absl::Time end;
  GroupCommitter::Stats stats;
  {
    GroupCommitter committer(db->get());
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    const absl::Time deadline = absl::Now() + duration;
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&, w] {
        while (!go.load()) std::this_thread::yield();
        while (absl::Now() < deadline) {
          absl::Status s = committer.Commit([&](Database& db) {
            absl::StatusOr<Statement> insert =
                db.Prepare("INSERT INTO events(writer, payload) VALUES (?, ?)");
            if (!insert.ok()) return insert.status();
            return insert->Bind(1, w).BindBlob(2, payload).Run();
          });
          if (!s.ok()) ++failures;
        }
      });
    }
    start = absl::Now();
    go = true;
    for (std::thread& t : threads) t.join();
    end = absl::Now();
    stats = committer.stats();
  }
  db->reset();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    unlink(absl::StrCat(path, suffix).c_str());
  }

  const double seconds = absl::ToDoubleSeconds(end - start);
  printf("%8d %12.0f %18.1f %10lld %10lld %9lld\n", writers,
         static_cast<double>(stats.writes) / seconds,
         stats.commits > 0 ? static_cast<double>(stats.writes) / stats.commits
                           : 0.0,
         static_cast<long long>(stats.writes),
         static_cast<long long>(stats.commits),
         static_cast<long long>(failures.load()));
  return failures.load() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace switchboard::storage

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const std::string dir = switchboard::storage::MakeTempDir();
  printf("group commit, synchronous=FULL, %.1f s per row, in %s\n", seconds,
         dir.c_str());
  printf("%8s %12s %18s %10s %10s %9s\n", "writers", "writes/s",
         "writes/commit", "writes", "commits", "failures");
  int rc = 0;
  for (int writers : {1, 8, 64}) {
    rc |= switchboard::storage::RunOnce(dir, writers,
                                        absl::Seconds(seconds));
  }
  rmdir(dir.c_str());
  return rc;
}
