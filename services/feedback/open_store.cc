#include "services/feedback/open_store.h"

#include "services/feedback/postgres_store.h"
#include "services/feedback/sqlite_store.h"

namespace switchboard::feedback {

std::optional<int> OpenFeedbackStore(host::Host& host, FeedbackStore** store) {
  host::StoreOptions options{host::Migrated(FeedbackMigrations())};
  options.postgres_migrations = &PostgresFeedbackMigrations();
  if (auto exit = host.OpenStore(std::move(options))) return exit;
  if (host.on_postgres()) {
    *store = &host.Make<PostgresFeedbackStore>(host.database_uri(), host.topic(),
                                               host.relay_notifier());
  } else {
    *store = &host.Make<SqliteFeedbackStore>(&host.committer(), host.database_path(),
                                             host.topic(), host.relay_notifier());
  }
  return std::nullopt;
}

}  // namespace switchboard::feedback
