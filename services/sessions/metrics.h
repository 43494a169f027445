#pragma once

#include <array>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "switchboard/common/v1/common.pb.h"
#include "switchboard/sessions/v1/sessions_service.pb.h"

namespace switchboard::sessions {

// Every domain metric of the sessions service, created once; the per-label
// handles are cached so that hot paths do no label lookups. Labels are the
// session's channel and category (low cardinality, never an id).
struct SessionsMetrics {
  explicit SessionsMetrics(prometheus::Registry& registry);

  static constexpr int kChannels = 5;    // common.v1.Channel values
  static constexpr int kCategories = 9;  // common.v1.Category values
  using ByQueue = std::array<std::array<prometheus::Histogram*, kCategories>, kChannels>;

  prometheus::Histogram& bot_turn(common::v1::Channel ch, common::v1::Category ca) {
    return *bot_turn_seconds[ch][ca];
  }
  prometheus::Histogram& queue_wait(common::v1::Channel ch, common::v1::Category ca) {
    return *queue_wait_seconds[ch][ca];
  }
  prometheus::Histogram& first_response(common::v1::Channel ch, common::v1::Category ca) {
    return *first_response_seconds[ch][ca];
  }
  prometheus::Histogram& resolution(common::v1::Channel ch, common::v1::Category ca) {
    return *resolution_seconds[ch][ca];
  }
  prometheus::Counter& sla_breach(common::v1::Channel ch, common::v1::Category ca) {
    return *sla_breaches[ch][ca];
  }
  prometheus::Gauge& sessions(v1::SessionState state) { return *sessions_by_state[state]; }

  // switchboard_sessions_bot_turn_seconds{channel,category}: from the
  // moment a customer message in BOT state is durable to the bot's answer
  // (or its failure) coming back.
  ByQueue bot_turn_seconds{};
  // switchboard_sessions_queue_wait_seconds{channel,category}: entering
  // QUEUED to AssignAgent (each wait, including after transfers).
  ByQueue queue_wait_seconds{};
  // switchboard_sessions_first_human_response_seconds{channel,category}:
  // session creation to the first message of a human agent (bot and system
  // messages never count); once per session.
  ByQueue first_response_seconds{};
  // switchboard_sessions_resolution_seconds{channel,category}: session
  // creation to ResolveSession (each resolution, including after reopens).
  ByQueue resolution_seconds{};
  // switchboard_sessions_sla_breaches_total{channel,category}: sessions
  // whose first-response due time passed with no agent message; once each.
  std::array<std::array<prometheus::Counter*, kCategories>, kChannels> sla_breaches{};
  // switchboard_sessions{state}: sessions in each state now.
  std::array<prometheus::Gauge*, 6> sessions_by_state{};
  // switchboard_sessions_bot_outcomes_total{outcome}: bot turns by outcome
  // (answered, clarified, not_understood, escalated, unavailable, shed).
  prometheus::Counter* bot_answered;
  prometheus::Counter* bot_clarified;
  prometheus::Counter* bot_not_understood;
  prometheus::Counter* bot_escalated;
  prometheus::Counter* bot_unavailable;
  prometheus::Counter* bot_shed;
  // switchboard_sessions_write_stage_seconds{stage}: where the answer of a
  // call that writes (SendMessage, CreateSession, AssignAgent, ...) waits.
  // stage="durable": from the write being decided to its commit (the
  // writer's queue, its batch, the fsync, and the commits before it);
  // stage="answer": from the commit to the answering thread taking the
  // answer up. With grpc_server_handling_seconds they tell a slow disk from
  // a backed-up answering thread.
  prometheus::Histogram* write_durable_seconds;
  prometheus::Histogram* write_answer_seconds;
  // switchboard_sessions_routing_failures_total: calls to routing
  // (EnqueueSession, CancelSession) that failed and will be retried.
  prometheus::Counter* routing_failures;
  // switchboard_sessions_routing_pending: sessions whose latest state
  // routing has not acknowledged yet.
  prometheus::Gauge* routing_pending;

  // Attachments (UploadAttachment, DownloadAttachment, the scan and
  // retention loops).
  // switchboard_sessions_attachment_uploads_total{outcome}: uploads by
  // outcome: stored, replayed (a retry of a stored one), invalid (a header
  // field, the bytes not as declared, a type refused), over_limit (size or
  // daily quota), conflict (upload_id used for another file), refused (no
  // such session, or a state that takes no files from the caller), failed
  // (the server's fault).
  prometheus::Counter* upload_stored;
  prometheus::Counter* upload_replayed;
  prometheus::Counter* upload_invalid;
  prometheus::Counter* upload_over_limit;
  prometheus::Counter* upload_conflict;
  prometheus::Counter* upload_refused;
  prometheus::Counter* upload_failed;
  // switchboard_sessions_attachment_uploaded_bytes_total: bytes stored by
  // new uploads (after metadata removal).
  prometheus::Counter* uploaded_bytes;
  // switchboard_sessions_attachment_scans_total{outcome}: malware scans by
  // outcome: clean, rejected (malware, or too large to scan), unavailable
  // (the scanner was down or failed; tried again later).
  prometheus::Counter* scan_clean;
  prometheus::Counter* scan_rejected;
  prometheus::Counter* scan_unavailable;
  // switchboard_sessions_attachment_scan_seconds: how long each scan took,
  // whatever its outcome.
  prometheus::Histogram* scan_seconds;
  // switchboard_sessions_attachment_scan_oldest_pending_seconds: how long
  // the oldest PENDING_SCAN attachment has waited (nobody can download it
  // meanwhile), as of the last scan pass; 0 when none waits.
  prometheus::Gauge* scan_oldest_pending_seconds;
  // switchboard_sessions_attachment_downloads_total{kind}: downloads served
  // as bytes or as a signed URL.
  prometheus::Counter* download_bytes;
  prometheus::Counter* download_signed_url;
  // switchboard_sessions_attachments_deleted_total: attachments marked
  // DELETED by retention.
  prometheus::Counter* attachments_deleted;
};

}  // namespace switchboard::sessions
