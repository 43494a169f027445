#include "services/sessions/model.h"

namespace switchboard::sessions {

MessagedSession Messaged(const SessionRecord& record) {
  return {record.session.session_id(), record.session.SerializeAsString(),
          record.customer_messages,    record.bot_messages,
          record.agent_messages,       record.bot_turn_sequence};
}

}  // namespace switchboard::sessions
