#include "broker/storage/jetstream_names.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/storage/jetstream_connection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relay::broker {
namespace {

using ::testing::Optional;

std::vector<std::string> SampleTopics() {
  std::vector<std::string> topics = {"orders", "orders.dlq", "orders-dlq", "orders_dlq",
                                     "a.b",    "a..b",       ".a",         "a.",
                                     "-",      "_",          "0",          "x.dlq.dlq"};
  for (size_t n : {248, 249, 250, 251, 254, 255}) {
    topics.push_back(std::string(n, 'a'));
    topics.push_back(std::string(n - 1, 'a') + "b");  // differs in the last (hashed) character
    topics.push_back(std::string(n, '.'));
  }
  return topics;
}

bool IsValidStreamName(const std::string& name) {
  if (name.empty() || name.size() > kMaxStreamNameBytes) return false;
  for (char c : name) {
    if (c == '.' || c == '*' || c == '>' || c == '/' || c == '\\' || c <= ' ' || c >= 0x7f) {
      return false;
    }
  }
  return true;
}

TEST(JetStreamNames, StreamNamesAreValidAndRoundTrip) {
  for (const std::string& topic : SampleTopics()) {
    const std::string stream = StreamNameForTopic(topic);
    EXPECT_TRUE(IsValidStreamName(stream)) << stream;
    EXPECT_THAT(TopicForStream(stream, StreamDescriptionForTopic(topic)), Optional(topic))
        << stream;
    EXPECT_EQ(SubjectForTopic(topic), "relay." + stream);
  }
}

TEST(JetStreamNames, MappingIsInjective) {
  std::set<std::string> streams;
  std::set<std::string> subjects;
  const std::vector<std::string> topics = SampleTopics();
  for (const std::string& topic : topics) {
    streams.insert(StreamNameForTopic(topic));
    subjects.insert(SubjectForTopic(topic));
  }
  EXPECT_EQ(streams.size(), topics.size());
  EXPECT_EQ(subjects.size(), topics.size());
}

TEST(JetStreamNames, ShortTopicsDecodeFromTheNameAlone) {
  EXPECT_EQ(StreamNameForTopic("orders.dlq"), "RELAY_ordersDdlq");
  EXPECT_THAT(TopicForStream("RELAY_ordersDdlq", ""), Optional(std::string("orders.dlq")));
  EXPECT_EQ(StreamNameForTopic(std::string(249, 'a')).size(), 255u);
}

TEST(JetStreamNames, LongTopicsGetAHashedNameCheckedAgainstTheDescription) {
  const std::string topic = std::string(250, 'a');
  const std::string stream = StreamNameForTopic(topic);
  EXPECT_EQ(stream.size(), 254u);
  EXPECT_EQ(TopicForStream(stream, ""), std::nullopt);
  EXPECT_EQ(TopicForStream(stream, StreamDescriptionForTopic(std::string(251, 'a'))), std::nullopt);
  EXPECT_THAT(TopicForStream(stream, StreamDescriptionForTopic(topic)), Optional(topic));
}

TEST(JetStreamNames, ForeignStreamsAreNotTopics) {
  for (const char* name : {"ORDERS", "RELAY_", "RELAY_aXb", "RELAY_a.b", "KV_relay", "relay_x"}) {
    EXPECT_EQ(TopicForStream(name, ""), std::nullopt) << name;
  }
}

TEST(JetStreamNames, MsgIdsAreInjectiveAndHeaderSafe) {
  const std::vector<std::string> ids = {"e-1",  "~e-1", "e 1",  "e\r\n1", std::string("\0", 1),
                                        "~",    "7e",   "~65",  "a\x80",  " e-1",
                                        "e-1 ", "e1",   "~2065"};
  std::set<std::string> seen;
  for (const std::string& id : ids) {
    const std::string msg_id = MsgIdForEventId(id);
    EXPECT_TRUE(seen.insert(msg_id).second) << msg_id;
    for (char c : msg_id) EXPECT_TRUE(c > ' ' && c < 0x7f) << msg_id;
  }
  EXPECT_EQ(MsgIdForEventId("order-7"), "order-7");
}

// A key the NATS client accepts (it checks [-/_=.a-zA-Z0-9], no '.' at
// either end) that is one subject token (no '.' at all).
bool IsSingleTokenKvKey(const std::string& key) {
  if (key.empty()) return false;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '/' || c == '_' || c == '=';
    if (!ok) return false;
  }
  return true;
}

TEST(JetStreamNames, GroupKeysAreSingleTokenKvKeysAndRoundTrip) {
  for (const std::string& topic : SampleTopics()) {
    for (const std::string& group : SampleTopics()) {
      const std::string key = GroupKey(topic, group);
      ASSERT_TRUE(IsSingleTokenKvKey(key)) << key;
      EXPECT_LE(key.size(), 511u);
      EXPECT_THAT(GroupForKey(key), Optional(std::make_pair(topic, group))) << key;
    }
  }
  EXPECT_EQ(GroupKey("orders.dlq", "ops.audit"), "ordersDdlq/opsDaudit");
}

TEST(JetStreamNames, GroupKeysAreInjective) {
  // Neighbours that a naive join would merge: where the dots and the
  // separator fall.
  const std::vector<std::pair<std::string, std::string>> groups = {
      {"a.b", "c"}, {"a", "b.c"}, {"a", "b/c"},  {"a.b.c", "d"}, {"ab", "c"},  {"a", "bc"},
      {"a-b", "c"}, {"a_b", "c"}, {"a", ".bc"},  {"a.", "bc"},   {"a", "bc."}, {".", "."},
      {"..", "."},  {".", ".."},  {"a", "b..c"}, {"a..b", "c"},  {"-", "-"},   {"_", "-"}};
  std::set<std::pair<std::string, std::string>> pairs;
  for (const auto& [topic, group] : groups) {
    if (topic.find('/') == std::string::npos && group.find('/') == std::string::npos) {
      pairs.insert({topic, group});  // "a"/"b/c" is not a pair of names
    }
  }
  for (const std::string& topic : SampleTopics()) {
    for (const std::string& group : SampleTopics()) pairs.insert({topic, group});
  }
  std::set<std::string> keys;
  for (const auto& [topic, group] : pairs) keys.insert(GroupKey(topic, group));
  EXPECT_EQ(keys.size(), pairs.size());
}

TEST(JetStreamNames, ForeignKeysAreNotGroups) {
  for (const char* key : {"orders", "a/b/c", "/b", "a/", "a.b/c", "aXb/c", "a/b=c", ""}) {
    EXPECT_EQ(GroupForKey(key), std::nullopt) << key;
  }
}

// The broker logs its --nats list and names it in its errors: a password
// or token in a URL must not go to the logs with it.
TEST(RedactedNatsUrls, HidesPasswordsAndTokensOnly) {
  EXPECT_EQ(RedactedNatsUrls("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
  EXPECT_EQ(RedactedNatsUrls("nats://relay:s3cret@nats-1:4222,nats://tok@nats-2:4222,nats-3:4222"),
            "nats://relay:***@nats-1:4222,nats://***@nats-2:4222,nats-3:4222");
  EXPECT_EQ(RedactedNatsUrls("relay:p@ss@host:4222"), "relay:***@host:4222");
  // As the NATS client reads a URL: the credentials end at the last '@'.
  EXPECT_EQ(RedactedNatsUrls("nats://relay:ab/c@d@host:4222"), "nats://relay:***@host:4222");
  EXPECT_EQ(RedactedNatsUrls("nats://relay:x@[::1]:4222"), "nats://relay:***@[::1]:4222");
  EXPECT_EQ(RedactedNatsUrls(""), "");
}

}  // namespace
}  // namespace relay::broker
