#pragma once

// Filling the envelope of a Switchboard event (proto/switchboard/events/v1/
// event.proto) and naming the topics events go to.
//
// Example:
//   v1::Event event;
//   *event.mutable_agent_status_changed() = change;
//   absl::Status s = Seal(event, "presence", agent_id, clock->Now());
//   // event.type() == "presence.agent_status_changed"
//   AppendToOutbox(db, TopicFor("presence"), event);
//
// Thread-safe: all functions here may be called from any thread.

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "switchboard/events/v1/event.pb.h"

namespace switchboard::events {

// The topic prefix of Switchboard's events.
inline constexpr char kDefaultTopicPrefix[] = "switchboard.";

// Fills the envelope around the payload already set in `event`: a new
// random event_id (UUID v4), `producer`, `entity_id` (the record key),
// `occurred_at`, and `type` = producer + "." + the name of the payload field
// that is set (e.g. "presence.agent_status_changed"). Works for any payload
// of the `payload` oneof, including ones added after this code was built.
// INVALID_ARGUMENT (leaving `event` unchanged) if no payload is set, if
// producer or entity_id is empty, or if occurred_at is infinite.
absl::Status Seal(v1::Event& event, absl::string_view producer,
                  absl::string_view entity_id, absl::Time occurred_at);

// The topic of a producer's events: prefix + producer + ".v1".
std::string TopicFor(absl::string_view prefix, absl::string_view producer);
// With the default prefix: TopicFor("presence") == "switchboard.presence.v1".
std::string TopicFor(absl::string_view producer);

// A random (version 4) UUID in its canonical lowercase form, e.g.
// "3f1c2a9e-7b4d-4c1e-9a2f-0d5e6b7c8a91", from a generator seeded by the
// operating system's entropy (122 random bits: collisions are not a concern).
std::string RandomUuid();

}  // namespace switchboard::events
