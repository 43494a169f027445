#pragma once

// The sessions server's own settings and flags; libs/host adds the shared
// ones (ports, data folder, keys, events, TLS).

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/config/flags.h"
#include "services/sessions/attachments.h"
#include "services/sessions/sessions.h"
#include "services/sessions/sessions_service.h"

namespace switchboard::sessions {

struct ServerConfig {
  std::string bot_address = "localhost:7103";
  std::string routing_address = "localhost:7102";
  absl::Duration bot_deadline = absl::Seconds(2);
  absl::Duration routing_timeout = absl::Seconds(2);
  std::string email_sla_by_category;
  std::string business_hours_sla_categories;
  SessionsOptions sessions;
  absl::Duration sweep_interval = absl::Seconds(5);
  absl::Duration routing_retry_interval = absl::Seconds(2);
  // Bot turns: their own pool, so a slow bot never holds the RPC workers.
  int bot_threads = 8;
  // Background calls to routing and the bot (telling routing of an
  // escalation, a shed bot turn): their own threads, so a slow routing never
  // holds the RPC workers that routing's own calls here need.
  int peer_threads = 16;
  int bot_queue = 256;
  int closed_cache_size = 10'000;
  int reader_connections = 4;
  int max_queued_writes = 4096;
  int stream_backlog = 256;
  SessionsService::Options service;
  int reads_per_second = 5;
  int reads_burst = 20;
  int staff_reads_per_second = 100;
  int staff_reads_burst = 200;
  // Attachments: limits, where the bytes go, the malware scanner.
  AttachmentsOptions attachments;
  int max_attachment_mib = 20;
  int attachment_mib_per_day = 500;
  // "files" (content-addressed, under --data_dir/attachments) or an
  // S3-compatible endpoint, "https://host[:port]".
  std::string blob_store = "files";
  std::string s3_bucket;
  std::string s3_region = "us-east-1";
  std::string s3_access_key_id;
  // A file holding the secret key (a mounted Secret), never a flag value.
  std::string s3_secret_access_key_file;
  std::string clamd_address = "unix:/run/clamav/clamd.ctl";
  absl::Duration scan_interval = absl::Seconds(2);
  absl::Duration retention_interval = absl::Hours(1);
};

// Registers sessions' own flags, with `config`'s values as defaults.
void AddServerFlags(config::FlagSet& flags, ServerConfig* config);

// Checks the values the flags gave and completes `config` (the category
// lists parsed into `config.sessions`, the limits copied into
// `config.service`). INVALID_ARGUMENT naming the flags at fault.
absl::Status CheckServerConfig(ServerConfig& config);

// "ACCOUNT_SECURITY=4h,DEPOSIT=24h" (case-insensitive names) -> per-category
// SLA targets. INVALID_ARGUMENT quoting the item that is not
// CATEGORY=DURATION with a known category and a positive duration.
absl::Status ParseSlaByCategory(absl::string_view text,
                                absl::flat_hash_map<int, absl::Duration>* out);

// "deposit,withdrawal" -> those categories. INVALID_ARGUMENT quoting the
// item that is not a category.
absl::Status ParseCategories(absl::string_view text, absl::flat_hash_set<int>* out);

}  // namespace switchboard::sessions
