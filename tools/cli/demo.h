#pragma once

#include <string>
#include <vector>

#include "tools/cli/clients.h"

namespace switchboard::cli {

// `switchboard demo`: plays a whole chat journey against a running
// platform with a customer and two agents (fresh ids each run) and prints
// a timeline (elapsed ms, actor, what happened) and the response-time
// figures the session's timestamps give:
//   the customer asks the bot a question and gets an answer; asks for a
//   human; routing offers the session to agent one, who accepts; they
//   chat; agent one drops (see below) and routing re-queues the session at
//   the head of its queue; agent two comes online, is offered it, accepts,
//   answers and resolves; the customer rates it.
// The drop is a real presence lapse (agent one's device stops
// heartbeating) when the presence lease is at most --max_lapse_wait;
// otherwise (the 30 s default lease) agent one goes OFFLINE with
// SetStatus, which routing treats the same way. The timeline says which.
int RunDemo(const std::vector<std::string>& args, Io& io);

}  // namespace switchboard::cli
