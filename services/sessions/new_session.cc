#include "services/sessions/new_session.h"

#include "libs/protoutil/time.h"

namespace switchboard::sessions {
namespace {

void SetTs(absl::Time t, google::protobuf::Timestamp* out) { protoutil::ToTimestamp(t, out); }

void AddCustomer(v1::Session& s, absl::Time now) {
  v1::Participant* customer = s.add_participants();
  customer->set_role(common::v1::SENDER_ROLE_CUSTOMER);
  customer->set_id(s.customer_id());
  SetTs(now, customer->mutable_joined_at());
}

// The handoff of a session that never sees the bot.
void WithoutBot(v1::Session& s, absl::Time now) {
  common::v1::HandoffContext* h = s.mutable_handoff();
  h->set_reason(common::v1::ESCALATION_REASON_CHANNEL_WITHOUT_BOT);
  h->set_category(s.category());
  h->set_language(s.language());
  *h->mutable_verification() = s.verification();
  SetTs(now, h->mutable_escalated_at());
}

v1::CallbackRequest Callback(const std::string& callback_id, const std::string& phone_id,
                             const v1::CallbackDetails& details, absl::Time now) {
  v1::CallbackRequest cb;
  cb.set_callback_id(callback_id);
  cb.set_phone_session_id(phone_id);
  cb.set_phone_number(details.phone_number());
  if (details.has_window_start()) *cb.mutable_window_start() = details.window_start();
  *cb.mutable_window_end() = details.window_end();
  cb.set_note(details.note());
  SetTs(now, cb.mutable_requested_at());
  return cb;
}

}  // namespace

bool StartsWithBot(common::v1::Channel channel) {
  return channel == common::v1::CHANNEL_CHAT || channel == common::v1::CHANNEL_SOCIAL;
}

SessionRecord NewSessionRecord(const std::string& session_id, const std::string& callback_id,
                               const NewSession& fields,
                               const v1::CreateSessionRequest& request,
                               const std::optional<common::v1::VerificationState>& verification,
                               absl::Duration reply_target, absl::Time now) {
  SessionRecord r;
  r.create_request_id = request.request_id();
  v1::Session& s = r.session;
  s.set_session_id(session_id);
  s.set_customer_id(fields.customer_id);
  s.set_channel(fields.channel);
  s.set_category(fields.category);
  s.set_language(fields.language);
  s.set_subject(request.subject());
  if (request.has_social()) *s.mutable_social() = request.social();
  SetTs(now, s.mutable_created_at());
  AddCustomer(s, now);
  if (verification) *s.mutable_verification() = *verification;
  if (reply_target > absl::ZeroDuration()) {
    protoutil::ToDuration(reply_target, s.mutable_sla()->mutable_target());
    SetTs(now + reply_target, s.mutable_sla()->mutable_due_at());
  }
  if (fields.channel == common::v1::CHANNEL_PHONE) {
    *s.mutable_callback() = Callback(callback_id, session_id, request.callback(), now);
  }
  if (StartsWithBot(fields.channel)) {
    r.bot_since = now;
  } else {
    WithoutBot(s, now);
  }
  return r;
}

SessionRecord CallbackSessionRecord(const std::string& phone_id, const std::string& callback_id,
                                    const v1::Session& origin,
                                    const v1::CallbackDetails& details,
                                    const common::v1::VerificationState& verification,
                                    absl::Time now) {
  SessionRecord r;
  v1::Session& p = r.session;
  p.set_session_id(phone_id);
  p.set_customer_id(origin.customer_id());
  p.set_channel(common::v1::CHANNEL_PHONE);
  p.set_category(origin.category());
  p.set_language(origin.language());
  p.set_parent_session_id(origin.session_id());
  *p.mutable_verification() = verification;
  SetTs(now, p.mutable_created_at());
  AddCustomer(p, now);
  *p.mutable_callback() = Callback(callback_id, phone_id, details, now);
  p.mutable_callback()->set_origin_session_id(origin.session_id());
  WithoutBot(p, now);
  return r;
}

}  // namespace switchboard::sessions
