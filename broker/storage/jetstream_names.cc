#include "broker/storage/jetstream_names.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace relay::broker {
namespace {

constexpr char kDotCode = 'D';
constexpr char kHashMark = 'H';
constexpr size_t kHashDigits = 16;
// Encoded characters kept before the hash: prefix + kept + 'H' + 16 = 254.
constexpr size_t kKeptBeforeHash = 231;
constexpr absl::string_view kDescriptionPrefix = "relay topic ";

bool IsTopicChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

uint64_t Fnv1a64(absl::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

std::string Encode(absl::string_view topic) {
  std::string out(topic);
  std::replace(out.begin(), out.end(), '.', kDotCode);
  return out;
}

std::string HashedStreamName(absl::string_view topic) {
  return absl::StrCat(kStreamPrefix, Encode(topic.substr(0, kKeptBeforeHash)),
                      absl::string_view(&kHashMark, 1), absl::StrFormat("%016x", Fnv1a64(topic)));
}

}  // namespace

std::string StreamNameForTopic(absl::string_view topic) {
  if (kStreamPrefix.size() + topic.size() <= kMaxStreamNameBytes) {
    return absl::StrCat(kStreamPrefix, Encode(topic));
  }
  return HashedStreamName(topic);
}

std::string SubjectForTopic(absl::string_view topic) {
  return absl::StrCat(kSubjectPrefix, StreamNameForTopic(topic));
}

std::string StreamDescriptionForTopic(absl::string_view topic) {
  return absl::StrCat(kDescriptionPrefix, topic);
}

std::optional<std::string> TopicForStream(absl::string_view stream_name,
                                          absl::string_view description) {
  if (!absl::StartsWith(stream_name, kStreamPrefix)) return std::nullopt;
  absl::string_view encoded = stream_name.substr(kStreamPrefix.size());
  if (encoded.empty()) return std::nullopt;
  const size_t mark = kKeptBeforeHash;
  if (encoded.size() == mark + 1 + kHashDigits && encoded[mark] == kHashMark) {
    if (!absl::StartsWith(description, kDescriptionPrefix)) return std::nullopt;
    std::string topic(description.substr(kDescriptionPrefix.size()));
    if (HashedStreamName(topic) != stream_name) return std::nullopt;
    return topic;
  }
  std::string topic;
  topic.reserve(encoded.size());
  for (char c : encoded) {
    if (c == kDotCode) {
      topic.push_back('.');
    } else if (IsTopicChar(c) && c != '.') {
      topic.push_back(c);
    } else {
      return std::nullopt;
    }
  }
  // Only names this mapping produces decode: a short topic never takes the
  // hashed form and a long one always does.
  if (StreamNameForTopic(topic) != stream_name) return std::nullopt;
  return topic;
}

std::string MsgIdForEventId(absl::string_view id) {
  const bool plain = !id.empty() && id.front() != '~' &&
                     std::all_of(id.begin(), id.end(), [](char c) { return c > ' ' && c < 0x7f; });
  if (plain) return std::string(id);
  return absl::StrCat("~", absl::BytesToHexString(id));
}

std::string GroupKey(absl::string_view topic, absl::string_view group) {
  return absl::StrCat(Encode(topic), "/", Encode(group));
}

std::optional<std::pair<std::string, std::string>> GroupForKey(absl::string_view key) {
  const size_t slash = key.find('/');
  if (slash == absl::string_view::npos) return std::nullopt;
  auto decode = [](absl::string_view encoded) -> std::optional<std::string> {
    if (encoded.empty() || encoded.size() > kMaxStreamNameBytes) return std::nullopt;
    std::string name;
    name.reserve(encoded.size());
    for (char c : encoded) {
      if (c == kDotCode) {
        name.push_back('.');
      } else if (IsTopicChar(c) && c != '.') {
        name.push_back(c);
      } else {
        return std::nullopt;  // a second '/', a '.', anything else
      }
    }
    return name;
  };
  std::optional<std::string> topic = decode(key.substr(0, slash));
  std::optional<std::string> group = decode(key.substr(slash + 1));
  if (!topic.has_value() || !group.has_value()) return std::nullopt;
  return std::make_pair(*std::move(topic), *std::move(group));
}

}  // namespace relay::broker
