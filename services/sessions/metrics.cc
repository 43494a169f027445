#include "services/sessions/metrics.h"

#include <string>

#include "absl/strings/ascii.h"

namespace switchboard::sessions {
namespace {

std::string Lower(const std::string& name, const std::string& prefix) {
  return absl::AsciiStrToLower(name.substr(prefix.size()));
}

SessionsMetrics::ByQueue MakeHistograms(prometheus::Registry& registry,
                                        const std::string& name, const std::string& help,
                                        const prometheus::Histogram::BucketBoundaries& buckets) {
  auto& family = prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
  SessionsMetrics::ByQueue out{};
  for (int ch = 0; ch < SessionsMetrics::kChannels; ++ch) {
    for (int ca = 0; ca < SessionsMetrics::kCategories; ++ca) {
      out[ch][ca] = &family.Add(
          {{"channel", Lower(common::v1::Channel_Name(ch), "CHANNEL_")},
           {"category", Lower(common::v1::Category_Name(ca), "CATEGORY_")}},
          buckets);
    }
  }
  return out;
}

}  // namespace

SessionsMetrics::SessionsMetrics(prometheus::Registry& registry) {
  const prometheus::Histogram::BucketBoundaries fast = {0.05, 0.1, 0.25, 0.5, 1, 2, 5};
  const prometheus::Histogram::BucketBoundaries human = {
      10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600, 48 * 3600, 7 * 24 * 3600};
  bot_turn_seconds = MakeHistograms(
      registry, "switchboard_sessions_bot_turn_seconds",
      "Bot turn latency: from a customer message in BOT state being durable to "
      "the bot's answer (or its failure or timeout) coming back, in seconds.",
      fast);
  queue_wait_seconds = MakeHistograms(
      registry, "switchboard_sessions_queue_wait_seconds",
      "Queue wait: from the session entering QUEUED to an agent being assigned "
      "(AssignAgent), per wait, in seconds.",
      human);
  first_response_seconds = MakeHistograms(
      registry, "switchboard_sessions_first_human_response_seconds",
      "Time to first human response: session creation to the first message of "
      "a human agent, once per session; bot and system messages never count.",
      human);
  resolution_seconds = MakeHistograms(
      registry, "switchboard_sessions_resolution_seconds",
      "Time to resolution: session creation to ResolveSession, per resolution, "
      "in seconds.",
      human);
  auto& breaches =
      prometheus::BuildCounter()
          .Name("switchboard_sessions_sla_breaches_total")
          .Help("Sessions whose first-response due time (EMAIL SLA) passed with no "
                "agent message, counted once per session when the breach is found.")
          .Register(registry);
  for (int ch = 0; ch < kChannels; ++ch) {
    for (int ca = 0; ca < kCategories; ++ca) {
      sla_breaches[ch][ca] =
          &breaches.Add({{"channel", Lower(common::v1::Channel_Name(ch), "CHANNEL_")},
                         {"category", Lower(common::v1::Category_Name(ca), "CATEGORY_")}});
    }
  }
  auto& states = prometheus::BuildGauge()
                     .Name("switchboard_sessions")
                     .Help("Sessions in each state now (CLOSED: every closed session "
                           "in the store, counted at start and as sessions close).")
                     .Register(registry);
  for (int s = 1; s < 6; ++s) {
    sessions_by_state[s] =
        &states.Add({{"state", Lower(v1::SessionState_Name(s), "SESSION_STATE_")}});
  }
  sessions_by_state[0] = sessions_by_state[1];  // never used: no state is UNSPECIFIED
  auto& outcomes = prometheus::BuildCounter()
                       .Name("switchboard_sessions_bot_outcomes_total")
                       .Help("Bot turns by outcome: answered, clarified, not_understood, "
                             "escalated (the bot handed over), unavailable (the bot was "
                             "not configured, timed out or failed; escalated to a human), "
                             "shed (the bot's pool was full, or the customer wrote faster "
                             "than the bot answered; escalated to a human without asking "
                             "the bot).")
                       .Register(registry);
  bot_answered = &outcomes.Add({{"outcome", "answered"}});
  bot_clarified = &outcomes.Add({{"outcome", "clarified"}});
  bot_not_understood = &outcomes.Add({{"outcome", "not_understood"}});
  bot_escalated = &outcomes.Add({{"outcome", "escalated"}});
  bot_unavailable = &outcomes.Add({{"outcome", "unavailable"}});
  bot_shed = &outcomes.Add({{"outcome", "shed"}});
  routing_failures = &prometheus::BuildCounter()
                          .Name("switchboard_sessions_routing_failures_total")
                          .Help("Calls to routing (EnqueueSession, CancelSession) that "
                                "failed; the session stays pending and is retried.")
                          .Register(registry)
                          .Add({});
  auto& write_stages =
      prometheus::BuildHistogram()
          .Name("switchboard_sessions_write_stage_seconds")
          .Help("Where the answer of a call that writes waits, in seconds: stage=durable "
                "from the write being decided to its commit, stage=answer from the commit "
                "to the answering thread taking the answer up.")
          .Register(registry);
  const prometheus::Histogram::BucketBoundaries stages = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
  write_durable_seconds = &write_stages.Add({{"stage", "durable"}}, stages);
  write_answer_seconds = &write_stages.Add({{"stage", "answer"}}, stages);
  routing_pending = &prometheus::BuildGauge()
                         .Name("switchboard_sessions_routing_pending")
                         .Help("Sessions whose latest state routing has not acknowledged "
                               "yet (queued or cancelled while routing was unreachable).")
                         .Register(registry)
                         .Add({});

  auto& uploads =
      prometheus::BuildCounter()
          .Name("switchboard_sessions_attachment_uploads_total")
          .Help("Attachment uploads by outcome: stored, replayed (a retry of a stored "
                "upload), invalid (a header field, bytes not as declared, a file type "
                "refused), over_limit (file size or daily quota), conflict (upload_id "
                "used for another file), refused (no such session, or its state takes "
                "no files from the caller), failed (the server's fault).")
          .Register(registry);
  upload_stored = &uploads.Add({{"outcome", "stored"}});
  upload_replayed = &uploads.Add({{"outcome", "replayed"}});
  upload_invalid = &uploads.Add({{"outcome", "invalid"}});
  upload_over_limit = &uploads.Add({{"outcome", "over_limit"}});
  upload_conflict = &uploads.Add({{"outcome", "conflict"}});
  upload_refused = &uploads.Add({{"outcome", "refused"}});
  upload_failed = &uploads.Add({{"outcome", "failed"}});
  uploaded_bytes = &prometheus::BuildCounter()
                        .Name("switchboard_sessions_attachment_uploaded_bytes_total")
                        .Help("Bytes of attachments stored by new uploads, after metadata "
                              "removal.")
                        .Register(registry)
                        .Add({});
  auto& scans = prometheus::BuildCounter()
                    .Name("switchboard_sessions_attachment_scans_total")
                    .Help("Malware scans of attachments by outcome: clean, rejected "
                          "(malware found, or too large for the scanner), unavailable "
                          "(the scanner was down or failed; the file stays pending and "
                          "is tried again).")
                    .Register(registry);
  scan_clean = &scans.Add({{"outcome", "clean"}});
  scan_rejected = &scans.Add({{"outcome", "rejected"}});
  scan_unavailable = &scans.Add({{"outcome", "unavailable"}});
  scan_seconds = &prometheus::BuildHistogram()
                      .Name("switchboard_sessions_attachment_scan_seconds")
                      .Help("Malware scan latency per attachment, whatever the outcome, "
                            "in seconds.")
                      .Register(registry)
                      .Add({}, prometheus::Histogram::BucketBoundaries{
                                   0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30});
  scan_oldest_pending_seconds =
      &prometheus::BuildGauge()
           .Name("switchboard_sessions_attachment_scan_oldest_pending_seconds")
           .Help("How long the oldest attachment waiting for its malware scan (PENDING_SCAN: "
                 "nobody can download it) has waited since its upload, as of the last scan "
                 "pass; 0 when none waits. Grows while the scanner is down.")
           .Register(registry)
           .Add({});
  auto& downloads = prometheus::BuildCounter()
                        .Name("switchboard_sessions_attachment_downloads_total")
                        .Help("Attachment downloads by kind: bytes (streamed by the "
                              "server) or signed_url (fetched from the object store).")
                        .Register(registry);
  download_bytes = &downloads.Add({{"kind", "bytes"}});
  download_signed_url = &downloads.Add({{"kind", "signed_url"}});
  attachments_deleted = &prometheus::BuildCounter()
                             .Name("switchboard_sessions_attachments_deleted_total")
                             .Help("Attachments marked DELETED by the retention policy.")
                             .Register(registry)
                             .Add({});
}

}  // namespace switchboard::sessions
