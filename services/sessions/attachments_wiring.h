#pragma once

#include <optional>

#include "libs/host/host.h"
#include "services/sessions/attachments.h"
#include "services/sessions/server_config.h"
#include "services/sessions/sessions.h"

namespace switchboard::sessions {

// Makes the attachment parts of the sessions server from its flags: the blob
// store (files under --data_dir/attachments, or the S3-compatible store),
// libmagic's classifier, the clamd client and Attachments over `sessions`;
// checks at start that every record has its blob (logging the ones that do
// not), and runs the scan and retention loops while serving. Sets
// `*attachments`, or returns the exit code of a failed start.
std::optional<int> MakeAttachments(host::Host& host, const ServerConfig& config,
                                   Sessions* sessions, SessionsMetrics* metrics,
                                   Attachments** attachments);

}  // namespace switchboard::sessions
