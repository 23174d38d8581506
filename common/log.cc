#include "common/log.h"

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace relay::log {
namespace {

struct State {
  std::string service = "relay";
  Format format = Format::kText;
  Level min_level = Level::kInfo;
};

State& GetState() {
  static State* state = new State();
  return *state;
}

absl::Mutex& WriteMutex() {
  static absl::Mutex* mu = new absl::Mutex();
  return *mu;
}

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "DEBUG";
    case Level::kInfo:
      return "INFO";
    case Level::kWarn:
      return "WARN";
    case Level::kError:
      return "ERROR";
  }
  return "INFO";
}

void AppendJsonString(std::string* out, absl::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// Text values with spaces or quotes are quoted so a line stays parseable.
void AppendTextValue(std::string* out, absl::string_view v) {
  bool plain = !v.empty();
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) plain = false;
  }
  if (plain) {
    out->append(v.data(), v.size());
  } else {
    AppendJsonString(out, v);
  }
}

}  // namespace

void Init(absl::string_view service, Format format) {
  GetState().service = std::string(service);
  GetState().format = format;
}

absl::Status ParseFormat(absl::string_view text, Format* format) {
  if (text == "text") {
    *format = Format::kText;
  } else if (text == "json") {
    *format = Format::kJson;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("log format must be 'text' or 'json', got '", text, "'"));
  }
  return absl::OkStatus();
}

void SetMinLevel(Level level) { GetState().min_level = level; }

namespace {
// ScopedField's fields of this thread, innermost last.
thread_local std::vector<std::pair<std::string, std::string>> scoped_fields;
}  // namespace

ScopedField::ScopedField(absl::string_view name, std::string value) {
  if (value.empty()) return;
  scoped_fields.emplace_back(std::string(name), std::move(value));
  pushed_ = true;
}

ScopedField::~ScopedField() {
  if (pushed_) scoped_fields.pop_back();
}

void Write(Level level, absl::string_view message, std::initializer_list<Field> fields) {
  const State& state = GetState();
  if (level < state.min_level) return;
  std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::string line;
  line.reserve(128);
  if (state.format == Format::kJson) {
    absl::StrAppend(&line, "{\"ts\":\"", ts, "\",\"level\":\"", LevelName(level),
                    "\",\"service\":");
    AppendJsonString(&line, state.service);
    line.append(",\"msg\":");
    AppendJsonString(&line, message);
    for (const Field& f : fields) {
      line.push_back(',');
      AppendJsonString(&line, f.first);
      line.push_back(':');
      AppendJsonString(&line, f.second);
    }
    for (const auto& [name, value] : scoped_fields) {
      line.push_back(',');
      AppendJsonString(&line, name);
      line.push_back(':');
      AppendJsonString(&line, value);
    }
    line.append("}\n");
  } else {
    absl::StrAppend(&line, ts, " ", LevelName(level), " ", state.service, " ", message);
    for (const Field& f : fields) {
      absl::StrAppend(&line, " ", f.first, "=");
      AppendTextValue(&line, f.second);
    }
    for (const auto& [name, value] : scoped_fields) {
      absl::StrAppend(&line, " ", name, "=");
      AppendTextValue(&line, value);
    }
    line.push_back('\n');
  }
  absl::MutexLock lock(&WriteMutex());
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

}  // namespace relay::log
