#include "libs/protoutil/json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "switchboard/events/v1/event.pb.h"

namespace switchboard::protoutil {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;
using google::protobuf::Message;
using google::protobuf::MessageFactory;
using google::protobuf::Reflection;

std::string Protobufs(const Message& message) {
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(message, &json).ok());
  return json;
}

std::string Ours(const Message& message) {
  std::string json;
  EXPECT_TRUE(AppendJson(message, &json)) << message.DebugString();
  return json;
}

// Every message type of the event schema and of the switchboard files it
// imports (the services' APIs, common), with Timestamp and Duration.
std::vector<const Descriptor*> AllTypes() {
  std::vector<const Descriptor*> types = {google::protobuf::Timestamp::descriptor(),
                                          google::protobuf::Duration::descriptor()};
  std::set<const FileDescriptor*> seen;
  std::vector<const FileDescriptor*> files = {events::v1::Event::descriptor()->file()};
  while (!files.empty()) {
    const FileDescriptor* file = files.back();
    files.pop_back();
    if (file->package().rfind("switchboard.", 0) != 0 || !seen.insert(file).second) continue;
    for (int i = 0; i < file->dependency_count(); ++i) files.push_back(file->dependency(i));
    std::vector<const Descriptor*> pending;
    for (int i = 0; i < file->message_type_count(); ++i) pending.push_back(file->message_type(i));
    while (!pending.empty()) {
      const Descriptor* type = pending.back();
      pending.pop_back();
      if (type->options().map_entry()) continue;
      types.push_back(type);
      for (int i = 0; i < type->nested_type_count(); ++i) pending.push_back(type->nested_type(i));
    }
  }
  return types;
}

// Fills messages with random values, favouring the cases printers get wrong:
// extremes, zeros, float edge values, escapes and multi-byte text.
class Filler {
 public:
  explicit Filler(uint64_t seed) : rng_(seed) {}

  void Fill(Message* message, int depth) {
    const Descriptor* type = message->GetDescriptor();
    const Reflection* reflection = message->GetReflection();
    if (type->well_known_type() == Descriptor::WELLKNOWNTYPE_TIMESTAMP) {
      auto* ts = static_cast<google::protobuf::Timestamp*>(message);
      ts->set_seconds(Pick<int64_t>({0, -1, 1, 1764768000, -62135596800, 253402300799,
                                     Between(-62135596800, 253402300799)}));
      ts->set_nanos(Nanos());
      return;
    }
    if (type->well_known_type() == Descriptor::WELLKNOWNTYPE_DURATION) {
      auto* d = static_cast<google::protobuf::Duration*>(message);
      const int64_t seconds = Pick<int64_t>({0, 1, 59, 86400, 315576000000, Between(0, 1000000)});
      const int32_t nanos = Nanos();
      const bool negative = Chance(3);
      d->set_seconds(negative ? -seconds : seconds);
      d->set_nanos(negative ? -nanos : nanos);
      return;
    }
    for (int i = 0; i < type->field_count(); ++i) {
      const FieldDescriptor* field = type->field(i);
      if (field->is_map() || Chance(3)) continue;
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && depth >= 4) continue;
      if (field->is_repeated()) {
        for (int n = Between(0, 3); n > 0; --n) Add(message, reflection, field, depth);
      } else {
        Set(message, reflection, field, depth);
      }
    }
  }

 private:
  bool Chance(int one_in) { return rng_() % one_in == 0; }
  int64_t Between(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  template <typename T>
  T Pick(std::initializer_list<T> values) {
    return values.begin()[rng_() % values.size()];
  }
  int32_t Nanos() {
    return Pick<int32_t>({0, 500000000, 1000000, 50000, 1, 999999999,
                          static_cast<int32_t>(Between(0, 999999999))});
  }
  double Floating() {
    return Pick<double>({0.0, 0.1, -2.5, 1e-7, 3.4e38, 1.0 / 3, 123456789.125, 1e300,
                         std::numeric_limits<double>::infinity(),
                         -std::numeric_limits<double>::infinity(),
                         std::numeric_limits<double>::quiet_NaN(),
                         std::uniform_real_distribution<double>(-1e6, 1e6)(rng_)});
  }
  std::string Text() {
    static const std::vector<std::string> pieces = {
        "hello",   " ",         "\"",           "\\",           "\n",       "\t\r\b\f",
        "<b>&</b>", "\x01\x1f", "\x7f",         "\xc2\x85",     "é",        "深圳",
        "🙂",      "\xc2\xad", "\xe2\x80\xa8", "\xef\xbb\xbf", "\xd8\x80", "\xf3\xa0\x80\xa1",
        "/",       "'",         "ünïcødé",      "\xf0\x9d\x85\xb3"};
    std::string text;
    for (int n = Between(0, 5); n > 0; --n) text += pieces[rng_() % pieces.size()];
    return text;
  }
  std::string Bytes() {
    std::string bytes(Between(0, 7), '\0');
    for (char& c : bytes) c = static_cast<char>(rng_());
    return bytes;
  }
  int Enum(const FieldDescriptor* field) {
    const auto* type = field->enum_type();
    // Open enums keep numbers the schema does not name.
    if (Chance(8)) return 1000 + static_cast<int>(Between(0, 5));
    return type->value(rng_() % type->value_count())->number();
  }

  void Set(Message* m, const Reflection* r, const FieldDescriptor* f, int depth) {
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->SetInt32(m, f, Pick<int32_t>({0, -1, 7, std::numeric_limits<int32_t>::min(),
                                         static_cast<int32_t>(rng_())}));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->SetUInt32(m, f, static_cast<uint32_t>(rng_()));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(m, f, Pick<int64_t>({0, -1, std::numeric_limits<int64_t>::min(),
                                         static_cast<int64_t>(rng_())}));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->SetUInt64(m, f, Pick<uint64_t>({0, std::numeric_limits<uint64_t>::max(), rng_()}));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        r->SetDouble(m, f, Floating());
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        r->SetFloat(m, f, static_cast<float>(Floating()));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->SetBool(m, f, Chance(2));
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->SetEnumValue(m, f, Enum(f));
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetString(m, f, f->type() == FieldDescriptor::TYPE_BYTES ? Bytes() : Text());
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        Fill(r->MutableMessage(m, f), depth + 1);
        break;
    }
  }

  void Add(Message* m, const Reflection* r, const FieldDescriptor* f, int depth) {
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->AddInt32(m, f, static_cast<int32_t>(rng_()));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->AddUInt32(m, f, static_cast<uint32_t>(rng_()));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->AddInt64(m, f, static_cast<int64_t>(rng_()));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->AddUInt64(m, f, rng_());
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        r->AddDouble(m, f, Floating());
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        r->AddFloat(m, f, static_cast<float>(Floating()));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->AddBool(m, f, Chance(2));
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->AddEnumValue(m, f, Enum(f));
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        r->AddString(m, f, f->type() == FieldDescriptor::TYPE_BYTES ? Bytes() : Text());
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        Fill(r->AddMessage(m, f), depth + 1);
        break;
    }
  }

  std::mt19937_64 rng_;
};

TEST(AppendJsonTest, PrintsWhatProtobufPrintsForEveryEventAndApiType) {
  const std::vector<const Descriptor*> types = AllTypes();
  ASSERT_GT(types.size(), 100u);
  Filler filler(20261203);
  int compared = 0;
  for (const Descriptor* type : types) {
    for (int round = 0; round < 40; ++round) {
      std::unique_ptr<Message> message(
          MessageFactory::generated_factory()->GetPrototype(type)->New());
      filler.Fill(message.get(), 0);
      std::string ours;
      ASSERT_TRUE(AppendJson(*message, &ours)) << type->full_name() << "\n"
                                                << message->DebugString();
      ASSERT_EQ(ours, Protobufs(*message)) << type->full_name() << "\n"
                                           << message->DebugString();
      ++compared;
    }
  }
  EXPECT_GT(compared, 4000);
}

TEST(AppendJsonTest, ReadsBackAsTheSameEvent) {
  events::v1::Event event;
  event.set_event_id("e-1");
  event.mutable_occurred_at()->set_seconds(1764768000);
  event.mutable_occurred_at()->set_nanos(5000);
  event.mutable_message_sent()->set_session_id("s-<1>");
  event.mutable_message_sent()->set_sender_id("Quoted \"x\"\n🙂");
  event.mutable_message_sent()->set_sequence(-7);
  events::v1::Event back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(Ours(event), &back).ok());
  EXPECT_EQ(back.SerializeAsString(), event.SerializeAsString());
}

TEST(AppendJsonTest, FormatsTimesAndDurationsAsProtobufDoes) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(-62135596800);
  EXPECT_EQ(Ours(ts), "\"0001-01-01T00:00:00Z\"");
  ts.set_seconds(1764768000);
  ts.set_nanos(120000000);
  EXPECT_EQ(Ours(ts), "\"2025-12-03T13:20:00.120Z\"");
  ts.set_nanos(120001000);
  EXPECT_EQ(Ours(ts), "\"2025-12-03T13:20:00.120001Z\"");
  google::protobuf::Duration d;
  d.set_nanos(-1500);
  EXPECT_EQ(Ours(d), "\"-0.000001500s\"");
  EXPECT_EQ(Ours(d), Protobufs(d));
}

TEST(AppendJsonTest, LeavesWhatItDoesNotCoverToProtobuf) {
  std::string out = "kept";
  google::protobuf::Struct as_struct;
  (*as_struct.mutable_fields())["a"].set_number_value(1);
  EXPECT_FALSE(AppendJson(as_struct, &out));
  google::protobuf::Timestamp past_9999;
  past_9999.set_seconds(253402300800);
  EXPECT_FALSE(AppendJson(past_9999, &out));
  google::protobuf::Duration mixed_signs;
  mixed_signs.set_seconds(1);
  mixed_signs.set_nanos(-1);
  EXPECT_FALSE(AppendJson(mixed_signs, &out));
  events::v1::Event not_utf8;
  not_utf8.set_event_id("\xff");
  EXPECT_FALSE(AppendJson(not_utf8, &out));
  EXPECT_EQ(out, "kept");
}

}  // namespace
}  // namespace switchboard::protoutil
