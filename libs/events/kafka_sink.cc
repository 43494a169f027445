#include "libs/events/kafka_sink.h"

#include <librdkafka/rdkafkacpp.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/fault/fault_point.h"
#include "libs/log/log.h"

namespace switchboard::events {
namespace {

constexpr char kSchema[] = "switchboard.events.v1.Event";

// What one Publish call waits for: a status per record.
struct Batch {
  std::vector<absl::Status> statuses;
  size_t pending = 0;
  // Some record timed out or was purged: rebuild the producer (see header).
  bool timed_out = false;
};

// The opaque pointer produce() carries to the delivery report.
struct Slot {
  Batch* batch;
  size_t index;
};

absl::Status CheckIdempotenceKept(const std::map<std::string, std::string>& settings) {
  for (const auto& [key, value] : settings) {
    const std::string v = absl::AsciiStrToLower(value);
    if (key == "enable.idempotence" && v != "true") {
      return absl::InvalidArgumentError(
          "kafka setting enable.idempotence must stay true: events would be "
          "duplicated or reordered on retries");
    }
    if ((key == "acks" || key == "request.required.acks") && v != "all" && v != "-1") {
      return absl::InvalidArgumentError(absl::StrCat(
          "kafka setting ", key, " must be all: an event is deleted from the "
          "outbox once acknowledged, so it must be on every in-sync replica"));
    }
    if (key == "max.in.flight.requests.per.connection" || key == "max.in.flight") {
      int in_flight = 0;
      if (!absl::SimpleAtoi(value, &in_flight) || in_flight > 5) {
        return absl::InvalidArgumentError(absl::StrCat(
            "kafka setting ", key, " must be at most 5 with idempotence"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

// Receives librdkafka's delivery reports (served by poll() on the thread
// that calls Publish) and fills the waiting batch.
class KafkaSink::DeliveryReports : public RdKafka::DeliveryReportCb,
                                   public RdKafka::EventCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    auto* slot = static_cast<Slot*>(message.msg_opaque());
    if (slot == nullptr) return;
    Batch* batch = slot->batch;
    if (message.err() == RdKafka::ERR_NO_ERROR &&
        message.status() == RdKafka::Message::MSG_STATUS_PERSISTED) {
      batch->statuses[slot->index] = absl::OkStatus();
    } else {
      batch->statuses[slot->index] = absl::UnavailableError(
          absl::StrCat("kafka delivery failed: ", RdKafka::err2str(message.err())));
      batch->timed_out |= message.err() == RdKafka::ERR__MSG_TIMED_OUT ||
                          message.err() == RdKafka::ERR__PURGE_INFLIGHT ||
                          message.err() == RdKafka::ERR__PURGE_QUEUE;
    }
    --batch->pending;
  }

  void event_cb(RdKafka::Event& event) override {
    if (event.type() == RdKafka::Event::EVENT_ERROR) {
      log::Warning("kafka_error", {{"error", RdKafka::err2str(event.err())},
                                   {"detail", event.str()},
                                   {"fatal", event.fatal()}});
    }
  }
};

absl::StatusOr<std::map<std::string, std::string>> ParseKafkaSettings(
    absl::string_view text) {
  std::map<std::string, std::string> settings;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    const size_t eq = entry.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kafka settings: \"", entry.substr(0, entry.find('=')),
          "\" is not key=value"));
    }
    settings[std::string(absl::StripAsciiWhitespace(entry.substr(0, eq)))] =
        std::string(absl::StripAsciiWhitespace(entry.substr(eq + 1)));
  }
  return settings;
}

absl::StatusOr<std::unique_ptr<KafkaSink>> KafkaSink::Create(const Options& options) {
  if (options.brokers.empty()) {
    return absl::InvalidArgumentError("kafka: no brokers given");
  }
  if (absl::Status s = CheckIdempotenceKept(options.settings); !s.ok()) return s;
  auto reports = std::make_unique<DeliveryReports>();
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  auto set = [&](const std::string& key, const std::string& value) -> absl::Status {
    if (conf->set(key, value, error) != RdKafka::Conf::CONF_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("kafka setting ", key, " rejected: ", error));
    }
    return absl::OkStatus();
  };
  for (const auto& [key, value] : std::map<std::string, std::string>{
           {"bootstrap.servers", options.brokers},
           {"client.id", options.client_id},
           {"enable.idempotence", "true"},
           {"acks", "all"},
           {"linger.ms", "5"},
           {"delivery.timeout.ms",
            absl::StrCat(absl::ToInt64Milliseconds(options.delivery_timeout))},
       }) {
    if (absl::Status s = set(key, value); !s.ok()) return s;
  }
  for (const auto& [key, value] : options.settings) {
    if (absl::Status s = set(key, value); !s.ok()) return s;
  }
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(reports.get()), error) !=
          RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(reports.get()), error) !=
          RdKafka::Conf::CONF_OK) {
    return absl::InternalError(absl::StrCat("kafka callbacks: ", error));
  }
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), error));
  if (producer == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("kafka producer: ", error));
  }
  log::Info("kafka_producer_started", {{"brokers", options.brokers},
                                       {"client_id", options.client_id}});
  return std::unique_ptr<KafkaSink>(
      new KafkaSink(options, std::move(reports), std::move(producer)));
}

KafkaSink::KafkaSink(Options options, std::unique_ptr<DeliveryReports> reports,
                     std::unique_ptr<RdKafka::Producer> producer)
    : options_(std::move(options)),
      reports_(std::move(reports)),
      producer_(std::move(producer)) {}

KafkaSink::~KafkaSink() {
  // Publish waits for its own reports, so nothing of ours is in flight;
  // flush only lets librdkafka finish its protocol traffic.
  producer_->flush(1000);
}

absl::Status KafkaSink::RebuildIfNeeded() {
  std::string reason;
  if (producer_->fatal_error(reason) != RdKafka::ERR_NO_ERROR) {
    log::Error("kafka_producer_fatal", {{"reason", reason}});
  } else if (!rebuild_) {
    return absl::OkStatus();
  }
  log::Warning("kafka_producer_rebuilt", {{"brokers", options_.brokers}});
  absl::StatusOr<std::unique_ptr<KafkaSink>> fresh = Create(options_);
  if (!fresh.ok()) return fresh.status();
  std::swap(producer_, (*fresh)->producer_);
  std::swap(reports_, (*fresh)->reports_);
  rebuild_ = false;
  return absl::OkStatus();
}

std::vector<absl::Status> KafkaSink::Publish(const std::vector<OutboxRecord>& records) {
  Batch batch;
  batch.statuses.assign(records.size(),
                        absl::UnavailableError("kafka: no delivery report in time"));
  if (absl::Status s = RebuildIfNeeded(); !s.ok()) {
    batch.statuses.assign(records.size(), s);
    return batch.statuses;
  }
  std::vector<Slot> slots(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    const OutboxRecord& record = records[i];
    slots[i] = Slot{&batch, i};
    RdKafka::Headers* headers = RdKafka::Headers::create();
    headers->add("event_id", record.event_id);
    headers->add("event_type", record.type);
    headers->add("schema", kSchema);
    headers->add("producer", record.type.substr(0, record.type.find('.')));
    RdKafka::ErrorCode code;
    while (true) {
      code = producer_->produce(record.topic, RdKafka::Topic::PARTITION_UA,
                                RdKafka::Producer::RK_MSG_COPY,
                                const_cast<char*>(record.value.data()), record.value.size(),
                                record.key.data(), record.key.size(), 0, headers, &slots[i]);
      if (code != RdKafka::ERR__QUEUE_FULL) break;
      producer_->poll(50);
    }
    if (code == RdKafka::ERR_NO_ERROR) {
      ++batch.pending;
    } else {
      delete headers;  // Owned by librdkafka only when produce succeeds.
      batch.statuses[i] = absl::UnavailableError(
          absl::StrCat("kafka produce failed: ", RdKafka::err2str(code)));
    }
  }
  // Crash tests: the batch is with the producer (some of it may already be
  // on the broker), no delivery report has been read.
  fault::Point("relay.after_produce");
  // Reports arrive within delivery.timeout.ms; allow a margin past it.
  const absl::Time give_up = absl::Now() + options_.delivery_timeout + absl::Seconds(5);
  // flush sends what is queued without waiting out linger.ms (nothing more
  // is coming for this batch) and serves delivery reports until none is
  // outstanding.
  producer_->flush(static_cast<int>(absl::ToInt64Milliseconds(give_up - absl::Now())));
  while (batch.pending > 0 && absl::Now() < give_up) producer_->poll(50);
  if (batch.pending > 0) {
    // Never leave librdkafka holding pointers into this call's stack.
    producer_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
    while (batch.pending > 0) producer_->poll(50);
  }
  rebuild_ = batch.timed_out;
  // Sink's contract: after a failure, later records of that key fail too.
  absl::flat_hash_set<std::string> failed_keys;
  for (size_t i = 0; i < records.size(); ++i) {
    if (failed_keys.contains(records[i].key)) {
      if (batch.statuses[i].ok()) {
        batch.statuses[i] = absl::AbortedError(
            "an earlier event of the same key failed; retried after it");
      }
    } else if (!batch.statuses[i].ok()) {
      failed_keys.insert(records[i].key);
    }
  }
  return batch.statuses;
}

}  // namespace switchboard::events
