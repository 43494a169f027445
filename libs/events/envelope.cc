#include "libs/events/envelope.h"

#include <cstdint>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace switchboard::events {

absl::Status Seal(v1::Event& event, absl::string_view producer,
                  absl::string_view entity_id, absl::Time occurred_at) {
  if (producer.empty()) {
    return absl::InvalidArgumentError("Seal: producer is empty");
  }
  if (entity_id.empty()) {
    return absl::InvalidArgumentError("Seal: entity_id is empty");
  }
  if (occurred_at == absl::InfiniteFuture() ||
      occurred_at == absl::InfinitePast()) {
    return absl::InvalidArgumentError("Seal: occurred_at is infinite");
  }
  // Reflection, so that payloads added to the oneof later need no change
  // here.
  const google::protobuf::OneofDescriptor* oneof =
      v1::Event::descriptor()->FindOneofByName("payload");
  const google::protobuf::FieldDescriptor* payload =
      oneof == nullptr
          ? nullptr
          : event.GetReflection()->GetOneofFieldDescriptor(event, oneof);
  if (payload == nullptr) {
    return absl::InvalidArgumentError("Seal: the event has no payload set");
  }

  event.set_event_id(RandomUuid());
  event.set_type(absl::StrCat(producer, ".", payload->name()));
  event.set_producer(std::string(producer));
  event.set_entity_id(std::string(entity_id));
  // ToUnixSeconds rounds toward the past, so nanos is never negative, as
  // Timestamp requires.
  const int64_t seconds = absl::ToUnixSeconds(occurred_at);
  event.mutable_occurred_at()->set_seconds(seconds);
  event.mutable_occurred_at()->set_nanos(static_cast<int32_t>(
      (occurred_at - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
  return absl::OkStatus();
}

std::string TopicFor(absl::string_view prefix, absl::string_view producer) {
  return absl::StrCat(prefix, producer, ".v1");
}

std::string TopicFor(absl::string_view producer) {
  return TopicFor(kDefaultTopicPrefix, producer);
}

std::string RandomUuid() {
  // absl::BitGen is seeded from the OS and not thread-safe: one per thread.
  thread_local absl::BitGen gen;
  uint64_t high = absl::Uniform<uint64_t>(gen);
  uint64_t low = absl::Uniform<uint64_t>(gen);
  high = (high & ~uint64_t{0xF000}) | uint64_t{0x4000};  // Version 4.
  low = (low & ~(uint64_t{0xC} << 60)) | (uint64_t{0x8} << 60);  // RFC 4122.
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", high >> 32,
                         (high >> 16) & 0xFFFF, high & 0xFFFF, low >> 48,
                         low & 0xFFFFFFFFFFFFULL);
}

}  // namespace switchboard::events
