#ifndef RELAY_COMMON_LOG_H_
#define RELAY_COMMON_LOG_H_

// Logs for people first (docs/STYLE.md#logs): one line per thing that happened, on
// stdout, e.g.
//   2026-11-26T22:30:19.229Z INFO relay-broker group opened topic=orders group=payment-service
// and with --log_format=json one JSON object per line:
//   {"ts":"2026-11-26T22:30:19.229Z","level":"INFO","service":"relay-broker",
//    "msg":"group opened","topic":"orders","group":"payment-service"}
//
// Usage: RELAY_LOG(Info, "group opened", {{"topic", t}, {"group", g}});
// (levels: Debug, Info, Warn, Error)
//
// Thread-safe: each line is written with one fwrite under a lock.

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace relay::log {

enum class Level { kDebug, kInfo, kWarn, kError };
enum class Format { kText, kJson };

using Field = std::pair<absl::string_view, std::string>;

// Sets the service name printed on every line and the format. Call once at
// start-up, before other threads log.
void Init(absl::string_view service, Format format);
// Parses "text" or "json".
absl::Status ParseFormat(absl::string_view text, Format* format);
void SetMinLevel(Level level);

void Write(Level level, absl::string_view message, std::initializer_list<Field> fields = {});

// While it lives, every line this thread writes ends with `name=value` (the
// trace id of the event being handled, say). Scopes nest; an empty value
// adds nothing. Create and destroy it on the same thread.
class ScopedField {
 public:
  ScopedField(absl::string_view name, std::string value);
  ~ScopedField();
  ScopedField(const ScopedField&) = delete;
  ScopedField& operator=(const ScopedField&) = delete;

 private:
  bool pushed_ = false;
};

}  // namespace relay::log

#define RELAY_LOG(level, ...) ::relay::log::Write(::relay::log::Level::k##level, __VA_ARGS__)

#endif  // RELAY_COMMON_LOG_H_
