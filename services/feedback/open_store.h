#pragma once

#include <optional>

#include "libs/host/host.h"
#include "services/feedback/store.h"

namespace switchboard::feedback {

// Opens the host's store with feedback's migrations and makes the
// FeedbackStore on it, as --database chose: SqliteFeedbackStore on
// DATA_DIR/feedback.db by default, PostgresFeedbackStore on a
// postgresql:// database that replicas share. Sets `*store` (a part of the
// host), or returns the exit code.
std::optional<int> OpenFeedbackStore(host::Host& host, FeedbackStore** store);

}  // namespace switchboard::feedback
