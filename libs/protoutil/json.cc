#include "libs/protoutil/json.h"

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace switchboard::protoutil {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// The ranges protobuf's printer accepts (RFC 3339 years 0001 to 9999).
constexpr int64_t kTimestampMinSeconds = -62135596800;
constexpr int64_t kTimestampMaxSeconds = 253402300799;
constexpr int64_t kDurationMaxSeconds = 315576000000;
constexpr int32_t kNanosPerSecond = 1000000000;

// Decodes the UTF-8 sequence at s[i]; returns its length, 0 if it is not
// the shortest encoding of a scalar value (protobuf's printer drops such
// bytes, so the caller falls back to it).
size_t DecodeUtf8(absl::string_view s, size_t i, uint32_t* cp) {
  const unsigned char lead = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t min;
  if (lead < 0x80) {
    *cp = lead;
    return 1;
  } else if (lead >= 0xc2 && lead <= 0xdf) {
    n = 2, min = 0x80, *cp = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3, min = 0x800, *cp = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4, min = 0x10000, *cp = lead & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const unsigned char c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xc0) != 0x80) return 0;
    *cp = *cp << 6 | (c & 0x3f);
  }
  if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff)) return 0;
  return n;
}

void AppendHexEscape(uint32_t unit, std::string* out) {
  absl::StrAppendFormat(out, "\\u%04x", unit);
}

// What protobuf's printer escapes besides '"' and '\\': control characters
// (C0, DEL, C1), '<' and '>', and code points that are invisible or change
// the direction or shaping of text.
bool PrinterEscapes(uint32_t cp) {
  if (cp < 0x20 || cp == '<' || cp == '>' || (cp >= 0x7f && cp < 0xa0)) return true;
  switch (cp) {
    case 0x00ad: case 0x06dd: case 0x070f: case 0x17b4: case 0x17b5:
    case 0xfeff: case 0xfff9: case 0xfffa: case 0xfffb: case 0xe0001:
      return true;
  }
  return (cp >= 0x0600 && cp <= 0x0603) || (cp >= 0x200b && cp <= 0x200f) ||
         (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2064) ||
         (cp >= 0x206a && cp <= 0x206f) || (cp >= 0x1d173 && cp <= 0x1d17a) ||
         (cp >= 0xe0020 && cp <= 0xe007f);
}

// The letter of JSON's two-character escape for `cp` ("\\n"), 0 if none.
char ShortEscape(uint32_t cp) {
  switch (cp) {
    case '\b': return 'b';
    case '\t': return 't';
    case '\n': return 'n';
    case '\f': return 'f';
    case '\r': return 'r';
  }
  return 0;
}

bool AppendQuoted(absl::string_view s, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0) return false;
    if (cp == '"' || cp == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(cp));
    } else if (!PrinterEscapes(cp)) {
      out->append(s.data() + i, n);
    } else if (const char letter = ShortEscape(cp); letter != 0) {
      out->push_back('\\');
      out->push_back(letter);
    } else if (cp < 0x10000) {
      AppendHexEscape(cp, out);
    } else {
      AppendHexEscape(0xd800 + ((cp - 0x10000) >> 10), out);
      AppendHexEscape(0xdc00 + ((cp - 0x10000) & 0x3ff), out);
    }
    i += n;
  }
  out->push_back('"');
  return true;
}

// protobuf's SimpleFtoa and SimpleDtoa: the shorter precision when it reads
// back as the same value.
template <typename T>
void AppendShortest(T value, int digits, int more_digits, std::string* out) {
  char buffer[32];
  snprintf(buffer, sizeof buffer, "%.*g", digits, static_cast<double>(value));
  const T parsed = sizeof(T) == sizeof(float) ? static_cast<T>(strtof(buffer, nullptr))
                                              : static_cast<T>(strtod(buffer, nullptr));
  if (parsed != value) {
    snprintf(buffer, sizeof buffer, "%.*g", more_digits, static_cast<double>(value));
  }
  out->append(buffer);
}

template <typename T>
void AppendFloating(T value, std::string* out) {
  if (std::isnan(value)) {
    out->append("\"NaN\"");
  } else if (std::isinf(value)) {
    out->append(value > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  } else if (sizeof(T) == sizeof(float)) {
    AppendShortest(value, FLT_DIG, FLT_DIG + 3, out);
  } else {
    AppendShortest(value, DBL_DIG, DBL_DIG + 2, out);
  }
}

// ".5", ".050", ".000005": 3, 6 or 9 digits, none for 0.
void AppendNanos(int32_t nanos, std::string* out) {
  if (nanos == 0) return;
  if (nanos % 1000000 == 0) {
    absl::StrAppendFormat(out, ".%03d", nanos / 1000000);
  } else if (nanos % 1000 == 0) {
    absl::StrAppendFormat(out, ".%06d", nanos / 1000);
  } else {
    absl::StrAppendFormat(out, ".%09d", nanos);
  }
}

bool AppendTimestamp(int64_t seconds, int32_t nanos, std::string* out) {
  if (seconds < kTimestampMinSeconds || seconds > kTimestampMaxSeconds || nanos < 0 ||
      nanos >= kNanosPerSecond) {
    return false;
  }
  const absl::CivilSecond t =
      absl::ToCivilSecond(absl::FromUnixSeconds(seconds), absl::UTCTimeZone());
  absl::StrAppendFormat(out, "\"%04d-%02d-%02dT%02d:%02d:%02d", t.year(), t.month(), t.day(),
                        t.hour(), t.minute(), t.second());
  AppendNanos(nanos, out);
  out->append("Z\"");
  return true;
}

bool AppendDuration(int64_t seconds, int32_t nanos, std::string* out) {
  if (seconds < -kDurationMaxSeconds || seconds > kDurationMaxSeconds ||
      nanos <= -kNanosPerSecond || nanos >= kNanosPerSecond || (seconds < 0 && nanos > 0) ||
      (seconds > 0 && nanos < 0)) {
    return false;
  }
  out->push_back('"');
  if (seconds < 0 || nanos < 0) out->push_back('-');
  absl::StrAppend(out, seconds < 0 ? -seconds : seconds);
  AppendNanos(nanos < 0 ? -nanos : nanos, out);
  out->append("s\"");
  return true;
}

bool AppendMessage(const Message& message, std::string* out);

bool AppendValue(const Message& message, const Reflection& reflection,
                 const FieldDescriptor& field, int index, std::string* out) {
  const bool repeated = field.is_repeated();
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(out, repeated ? reflection.GetRepeatedInt32(message, &field, index)
                                    : reflection.GetInt32(message, &field));
      return true;
    case FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(out, repeated ? reflection.GetRepeatedUInt32(message, &field, index)
                                    : reflection.GetUInt32(message, &field));
      return true;
    case FieldDescriptor::CPPTYPE_INT64:
      absl::StrAppend(out, "\"",
                      repeated ? reflection.GetRepeatedInt64(message, &field, index)
                               : reflection.GetInt64(message, &field),
                      "\"");
      return true;
    case FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(out, "\"",
                      repeated ? reflection.GetRepeatedUInt64(message, &field, index)
                               : reflection.GetUInt64(message, &field),
                      "\"");
      return true;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      AppendFloating(repeated ? reflection.GetRepeatedDouble(message, &field, index)
                              : reflection.GetDouble(message, &field),
                     out);
      return true;
    case FieldDescriptor::CPPTYPE_FLOAT:
      AppendFloating(repeated ? reflection.GetRepeatedFloat(message, &field, index)
                              : reflection.GetFloat(message, &field),
                     out);
      return true;
    case FieldDescriptor::CPPTYPE_BOOL:
      out->append((repeated ? reflection.GetRepeatedBool(message, &field, index)
                            : reflection.GetBool(message, &field))
                      ? "true"
                      : "false");
      return true;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int number = repeated ? reflection.GetRepeatedEnumValue(message, &field, index)
                                  : reflection.GetEnumValue(message, &field);
      const auto* value = field.enum_type()->FindValueByNumber(number);
      if (value == nullptr) {
        absl::StrAppend(out, number);
      } else {
        absl::StrAppend(out, "\"", value->name(), "\"");
      }
      return true;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& text =
          repeated ? reflection.GetRepeatedStringReference(message, &field, index, &scratch)
                   : reflection.GetStringReference(message, &field, &scratch);
      if (field.type() == FieldDescriptor::TYPE_BYTES) {
        absl::StrAppend(out, "\"", absl::Base64Escape(text), "\"");
        return true;
      }
      return AppendQuoted(text, out);
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return AppendMessage(repeated ? reflection.GetRepeatedMessage(message, &field, index)
                                    : reflection.GetMessage(message, &field),
                           out);
  }
  return false;
}

// Seconds and nanos, fields 1 and 2 of Timestamp and Duration.
std::pair<int64_t, int32_t> SecondsAndNanos(const Message& message) {
  const Descriptor* type = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  return {reflection->GetInt64(message, type->FindFieldByNumber(1)),
          reflection->GetInt32(message, type->FindFieldByNumber(2))};
}

bool AppendMessage(const Message& message, std::string* out) {
  const Descriptor* type = message.GetDescriptor();
  if (type->well_known_type() == Descriptor::WELLKNOWNTYPE_TIMESTAMP) {
    const auto [seconds, nanos] = SecondsAndNanos(message);
    return AppendTimestamp(seconds, nanos, out);
  }
  if (type->well_known_type() == Descriptor::WELLKNOWNTYPE_DURATION) {
    const auto [seconds, nanos] = SecondsAndNanos(message);
    return AppendDuration(seconds, nanos, out);
  }
  // Other well-known types have JSON forms of their own.
  if (type->well_known_type() != Descriptor::WELLKNOWNTYPE_UNSPECIFIED) return false;

  const Reflection& reflection = *message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  out->push_back('{');
  bool first = true;
  for (const FieldDescriptor* field : fields) {
    if (field->is_map() || field->type() == FieldDescriptor::TYPE_GROUP) return false;
    if (!first) out->push_back(',');
    first = false;
    absl::StrAppend(out, "\"", field->json_name(), "\":");
    if (!field->is_repeated()) {
      if (!AppendValue(message, reflection, *field, -1, out)) return false;
      continue;
    }
    out->push_back('[');
    const int size = reflection.FieldSize(message, field);
    for (int i = 0; i < size; ++i) {
      if (i > 0) out->push_back(',');
      if (!AppendValue(message, reflection, *field, i, out)) return false;
    }
    out->push_back(']');
  }
  out->push_back('}');
  return true;
}

}  // namespace

bool AppendJson(const Message& message, std::string* out) {
  const size_t before = out->size();
  if (AppendMessage(message, out)) return true;
  out->resize(before);
  return false;
}

}  // namespace switchboard::protoutil
