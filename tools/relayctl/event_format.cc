#include "tools/relayctl/event_format.h"

#include <algorithm>
#include <functional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/text.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver_util.h"
#include "relay/broker/v1/broker.pb.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "relay/events/v1/order_events.pb.h"
#include "relay/events/v1/payment_events.pb.h"
#include "tools/relayctl/money.h"

namespace relay::ctl {
namespace {

namespace ev = relay::events::v1;
using google::protobuf::Message;

void AppendEscaped(absl::string_view text, std::string* out) {
  for (char c : text) {
    switch (c) {
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (IsControl(c)) {
          absl::StrAppend(out, "\\x", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
        } else {
          out->push_back(c);
        }
    }
  }
}

// A value for a `name=value` word: quoted when empty or holding spaces,
// quotes or control characters, which are escaped (\n, \r, \t, \xNN), so
// that no event's bytes can move the cursor or recolour the terminal.
std::string Quote(const std::string& text) {
  if (!text.empty() && text.find_first_of(" \"") == std::string::npos &&
      std::none_of(text.begin(), text.end(), IsControl)) {
    return text;
  }
  std::string out = "\"";
  AppendEscaped(absl::StrReplaceAll(text, {{"\\", "\\\\"}, {"\"", "\\\""}}), &out);
  out.push_back('"');
  return out;
}

template <typename Line>
std::string Items(const google::protobuf::RepeatedPtrField<Line>& lines) {
  if (lines.empty()) return "-";
  return absl::StrJoin(lines, ",", [](std::string* out, const Line& line) {
    absl::StrAppend(out, line.sku(), "x", line.quantity());
  });
}

struct PayloadType {
  const char* type;
  std::function<std::unique_ptr<Message>()> make;
  std::function<std::string(const Message&)> summarize;
};

template <typename T>
PayloadType Payload(const char* type, std::function<std::string(const T&)> summarize) {
  return PayloadType{type, [] { return std::make_unique<T>(); },
                     [summarize](const Message& m) { return summarize(static_cast<const T&>(m)); }};
}

const std::vector<PayloadType>& PayloadTypes() {
  static const auto* types = new std::vector<PayloadType>{
      Payload<ev::OrderCreated>("order.created",
                                [](const ev::OrderCreated& m) {
                                  return absl::StrCat("customer=", Quote(m.customer_id()),
                                                      " items=", Items(m.lines()),
                                                      " total=", FormatMoney(m.total()));
                                }),
      Payload<ev::OrderConfirmed>("order.confirmed",
                                  [](const ev::OrderConfirmed& m) {
                                    return absl::StrCat("customer=", Quote(m.customer_id()),
                                                        " total=", FormatMoney(m.total()));
                                  }),
      Payload<ev::OrderCancelled>("order.cancelled",
                                  [](const ev::OrderCancelled& m) {
                                    return absl::StrCat("cause=", CancelCauseName(m.cause()),
                                                        " reason=", Quote(m.reason()),
                                                        " total=", FormatMoney(m.total()));
                                  }),
      Payload<ev::ProductUpdated>("product.updated",
                                  [](const ev::ProductUpdated& m) {
                                    return absl::StrCat("sku=", Quote(m.sku()),
                                                        " name=", Quote(m.name()),
                                                        " price=", FormatMoney(m.price()));
                                  }),
      Payload<ev::StockReserved>(
          "stock.reserved",
          [](const ev::StockReserved& m) { return absl::StrCat("items=", Items(m.lines())); }),
      Payload<ev::StockRejected>("stock.rejected",
                                 [](const ev::StockRejected& m) {
                                   return absl::StrCat(
                                       "sku=", Quote(m.sku()), " requested=", m.requested(),
                                       " available=", m.available(), " reason=", Quote(m.reason()));
                                 }),
      Payload<ev::StockReleased>("stock.released",
                                 [](const ev::StockReleased& m) {
                                   return absl::StrCat("items=", Items(m.lines()),
                                                       " reason=", Quote(m.reason()));
                                 }),
      Payload<ev::PaymentCaptured>("payment.captured",
                                   [](const ev::PaymentCaptured& m) {
                                     return absl::StrCat("payment=", Quote(m.payment_id()),
                                                         " customer=", Quote(m.customer_id()),
                                                         " amount=", FormatMoney(m.amount()));
                                   }),
      Payload<ev::PaymentDeclined>("payment.declined",
                                   [](const ev::PaymentDeclined& m) {
                                     return absl::StrCat("customer=", Quote(m.customer_id()),
                                                         " amount=", FormatMoney(m.amount()),
                                                         " reason=", Quote(m.reason()));
                                   }),
      Payload<ev::PaymentRefunded>("payment.refunded",
                                   [](const ev::PaymentRefunded& m) {
                                     return absl::StrCat("payment=", Quote(m.payment_id()),
                                                         " amount=", FormatMoney(m.amount()),
                                                         " reason=", Quote(m.reason()));
                                   }),
      Payload<relay::broker::v1::DeadLetter>(
          "relay.dead_letter",
          [](const relay::broker::v1::DeadLetter& m) {
            return absl::StrCat("group=", Quote(m.group()), " event=", Quote(m.event().type()),
                                " offset=", m.event().offset(),
                                " attempts=", m.attempts_size() + m.attempts_omitted(),
                                " error=", Quote(m.last_error()),
                                m.event_trimmed() ? " event_trimmed=true" : "");
          }),
  };
  return *types;
}

const PayloadType* FindPayloadType(const std::string& type) {
  for (const PayloadType& p : PayloadTypes()) {
    if (type == p.type) return &p;
  }
  return nullptr;
}

google::protobuf::util::JsonPrintOptions JsonOptions(bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Message>> DecodePayload(const ev::Event& event) {
  const PayloadType* type = FindPayloadType(event.type());
  if (type == nullptr) return std::unique_ptr<Message>();
  std::unique_ptr<Message> message = type->make();
  if (!message->ParseFromString(event.data())) {
    return absl::DataLossError(absl::StrCat("payload of ", event.type(), " event ", event.id(),
                                            " does not parse as ",
                                            message->GetDescriptor()->full_name()));
  }
  return message;
}

std::string SummarizePayload(const ev::Event& event) {
  absl::StatusOr<std::unique_ptr<Message>> message = DecodePayload(event);
  if (!message.ok()) return absl::StrCat("(undecodable ", event.data().size(), " bytes)");
  if (*message == nullptr) return absl::StrCat("(", event.data().size(), " bytes)");
  return FindPayloadType(event.type())->summarize(**message);
}

std::string FormatEventLine(const ev::Event& event) {
  std::string corr = CorrelationId(event);
  // The broker bounds an event's type, key and headers only by length:
  // quoted as payload fields are, so that their bytes cannot drive the
  // terminal.
  return absl::StrFormat("%s  %-10s %6d  %-17s  key=%s  corr=%s  %s",
                         FormatUtcTime(event.publish_time()), event.topic(), event.offset(),
                         Quote(event.type()), event.key().empty() ? "-" : Quote(event.key()),
                         corr.empty() ? "-" : Quote(corr), SummarizePayload(event));
}

std::string Printable(absl::string_view text) {
  if (std::none_of(text.begin(), text.end(), IsControl)) return std::string(text);
  std::string out;
  AppendEscaped(text, &out);
  return out;
}

std::string CorrelationId(const ev::Event& event) {
  auto it = event.headers().find("correlation_id");
  return it == event.headers().end() ? std::string() : it->second;
}

absl::Time ToTime(const google::protobuf::Timestamp& time) {
  return absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos());
}

std::string FormatUtcTime(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

std::string FormatUtcTime(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  return FormatUtcTime(ToTime(time));
}

std::string FormatDelta(absl::Duration d) {
  if (d < absl::ZeroDuration()) return absl::StrCat("-", FormatDelta(-d));
  if (d < absl::Seconds(1)) return absl::StrFormat("%.1fms", absl::ToDoubleMilliseconds(d));
  if (d < absl::Minutes(1)) return absl::StrFormat("%.3fs", absl::ToDoubleSeconds(d));
  return absl::FormatDuration(absl::Trunc(d, absl::Milliseconds(100)));
}

std::string ToJson(const Message& message, bool pretty) {
  // Deterministic serialization sorts map entries (headers, and the keys of
  // the documents relayctl builds as google.protobuf.Struct), so the JSON
  // lists keys in a stable order instead of hash order.
  std::string binary;
  {
    google::protobuf::io::StringOutputStream stream(&binary);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  static auto* resolver = google::protobuf::util::NewTypeResolverForDescriptorPool(
      "type.googleapis.com", google::protobuf::DescriptorPool::generated_pool());
  std::string json;
  if (!google::protobuf::util::BinaryToJsonString(
           resolver, absl::StrCat("type.googleapis.com/", message.GetDescriptor()->full_name()),
           binary, &json, JsonOptions(pretty))
           .ok()) {
    return "null";  // Only for messages with an Any of unknown type; relayctl has none.
  }
  if (pretty && !json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

google::protobuf::Value ToJsonValue(const Message& message) {
  google::protobuf::Value value;
  if (!google::protobuf::util::JsonStringToMessage(ToJson(message, false), &value).ok()) {
    value.set_null_value(google::protobuf::NULL_VALUE);
  }
  return value;
}

google::protobuf::Value EventToJsonValue(const ev::Event& event) {
  absl::StatusOr<std::unique_ptr<Message>> payload = DecodePayload(event);
  const bool decoded = payload.ok() && *payload != nullptr;
  ev::Event envelope = event;
  if (decoded) envelope.clear_data();
  google::protobuf::Value value = ToJsonValue(envelope);
  auto& fields = *value.mutable_struct_value()->mutable_fields();
  if (decoded) {
    fields.erase("data");
    fields["payload"] = ToJsonValue(**payload);
  }
  fields["summary"] = StringValue(SummarizePayload(event));
  return value;
}

google::protobuf::Value StringValue(const std::string& text) {
  google::protobuf::Value value;
  value.set_string_value(text);
  return value;
}

google::protobuf::Value NumberValue(double number) {
  google::protobuf::Value value;
  value.set_number_value(number);
  return value;
}

}  // namespace relay::ctl
