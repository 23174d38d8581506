#include "broker/storage/jetstream_event_log.h"

#include <nats/nats.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "broker/storage/jetstream_connection.h"
#include "broker/storage/jetstream_names.h"
#include "broker/storage/record.h"
#include "common/log.h"
#include "common/text.h"

namespace relay::broker {
namespace {

// Room left in the server's max_payload for the headers of a publish
// (Nats-Msg-Id up to 513 bytes, Nats-Expected-Stream up to 255,
// Nats-Expected-Last-Sequence up to 20, names: under 900).
constexpr int64_t kHeaderAllowance = 1024;

// The header that makes a publish conditional on the stream's last
// sequence (docs/JETSTREAM.md#order). Set by hand: the C client's
// jsPubOptions.ExpectLastSeq leaves out 0, which an empty stream needs.
constexpr char kExpectedLastSequence[] = "Nats-Expected-Last-Sequence";

constexpr char kOriginFailed[] =
    "an earlier batch of this publish stream was not stored: this one is not stored either, so "
    "that it cannot overtake it; send both again, in order, on a new stream";

bool IsValidTopicName(absl::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

// Direct gets go to any replica, and a follower may not have applied an
// acknowledged message yet: only a single copy makes them as current as the
// leader (docs/JETSTREAM.md#read).
bool DirectGetsAreCurrent(const jsStreamInfo* si) {
  return si->Config->AllowDirect && si->Config->Replicas <= 1;
}

bool IsPeriod(absl::Duration d) {
  return d > absl::ZeroDuration() && d != absl::InfiniteDuration();
}

}  // namespace

namespace {

struct MsgDeleter {
  void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;

// The value of header `key` of `msg`, or null.
const char* Header(natsMsg* msg, const char* key) {
  const char* value = nullptr;
  return natsMsgHeader_Get(msg, key, &value) == NATS_OK ? value : nullptr;
}

}  // namespace

// One subscription on <inbox>.> takes the replies of every Read's gets,
// sent to <inbox>.<read>.<sequence>, and hands each to its read.
// It lives as long as the connection: the C client 3.4.1 can deliver to a
// subscription destroyed meanwhile (natsConn_processMsg does not hold it),
// so a per-read subscription dropped with replies still in flight crashes.
class JetStreamEventLog::ReadReplies {
 public:
  using Reply = std::pair<uint64_t, MsgPtr>;  // sequence, message

  // One read's replies, in arrival order; late ones are dropped once it
  // is destroyed.
  class Read {
   public:
    Read(ReadReplies* owner, uint64_t id) : owner_(owner), id_(id) {}
    Read(const Read&) = delete;
    Read& operator=(const Read&) = delete;
    ~Read() { owner_->End(id_); }
    // <inbox>.<read>.<sequence>
    std::string ReplySubject(uint64_t seq) const {
      return absl::StrCat(owner_->prefix_, id_, ".", seq);
    }
    // The next reply; DEADLINE_EXCEEDED after `timeout`.
    absl::StatusOr<Reply> Next(absl::Duration timeout) { return owner_->Next(id_, timeout); }

   private:
    ReadReplies* const owner_;
    const uint64_t id_;
  };

  static absl::StatusOr<std::unique_ptr<ReadReplies>> Subscribe(natsConnection* nc) {
    natsInbox* box = nullptr;
    if (natsStatus s = natsInbox_Create(&box); s != NATS_OK) {
      return NatsUnavailable("cannot make an inbox", s);
    }
    std::unique_ptr<ReadReplies> replies(new ReadReplies(absl::StrCat(box, ".")));
    natsInbox_Destroy(box);
    natsStatus s =
        natsConnection_Subscribe(&replies->sub_, nc, absl::StrCat(replies->prefix_, ">").c_str(),
                                 &ReadReplies::OnReply, replies.get());
    if (s != NATS_OK) return NatsUnavailable("cannot subscribe to the replies of reads", s);
    // Reads bound what they ask for: the client must not drop replies.
    natsSubscription_SetPendingLimits(replies->sub_, -1, -1);
    natsSubscription_SetOnCompleteCB(replies->sub_, &ReadReplies::OnComplete, replies.get());
    return replies;
  }

  ReadReplies(const ReadReplies&) = delete;
  ReadReplies& operator=(const ReadReplies&) = delete;
  // Only once the connection is closed. A reply being handed over when it
  // closed still runs to its end: wait for the subscription's last callback
  // (bounded, in case the client never reports it).
  ~ReadReplies() {
    complete_.WaitForNotificationWithTimeout(absl::Seconds(5));
    natsSubscription_Destroy(sub_);
  }

  std::unique_ptr<Read> Begin() {
    absl::MutexLock lock(&mu_);
    const uint64_t id = next_id_++;
    reads_[id];
    return std::make_unique<Read>(this, id);
  }

 private:
  explicit ReadReplies(std::string prefix) : prefix_(std::move(prefix)) {}

  // On the subscription's delivery thread.
  static void OnReply(natsConnection* /*nc*/, natsSubscription* /*sub*/, natsMsg* raw,
                      void* closure) {
    auto* self = static_cast<ReadReplies*>(closure);
    MsgPtr msg(raw);
    absl::string_view rest = natsMsg_GetSubject(raw);
    if (!absl::ConsumePrefix(&rest, self->prefix_)) return;
    const size_t dot = rest.find('.');
    uint64_t id = 0;
    uint64_t seq = 0;
    if (dot == absl::string_view::npos || !absl::SimpleAtoi(rest.substr(0, dot), &id) ||
        !absl::SimpleAtoi(rest.substr(dot + 1), &seq)) {
      return;
    }
    absl::MutexLock lock(&self->mu_);
    auto it = self->reads_.find(id);
    if (it == self->reads_.end()) return;  // its read is over
    it->second.emplace_back(seq, std::move(msg));
  }

  // On the delivery thread, after its last OnReply.
  static void OnComplete(void* closure) { static_cast<ReadReplies*>(closure)->complete_.Notify(); }

  absl::StatusOr<Reply> Next(uint64_t id, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    std::deque<Reply>* queue = &reads_[id];
    auto arrived = [queue] { return !queue->empty(); };
    if (!mu_.AwaitWithTimeout(absl::Condition(&arrived), timeout)) {
      return absl::DeadlineExceededError("no reply");
    }
    Reply reply = std::move(queue->front());
    queue->pop_front();
    return reply;
  }

  void End(uint64_t id) {
    absl::MutexLock lock(&mu_);
    reads_.erase(id);
  }

  const std::string prefix_;  // "<inbox>."
  natsSubscription* sub_ = nullptr;
  absl::Notification complete_;
  absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  // node_hash_map: a read's queue stays put while it waits on it.
  absl::node_hash_map<uint64_t, std::deque<Reply>> reads_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::unique_ptr<JetStreamEventLog>> JetStreamEventLog::Open(Options options) {
  if (absl::StripAsciiWhitespace(options.servers).empty()) {
    return absl::InvalidArgumentError("no NATS server URL given");
  }
  if (options.replicas < 1 || options.replicas > 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("replicas must be in [1, 5], not ", options.replicas));
  }
  if (options.dedupe_window <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("dedupe_window must be positive");
  }
  if (options.max_age < absl::ZeroDuration() || options.retention_age < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_age and retention_age must not be negative");
  }
  if (options.hard_max_bytes != 0 && options.retention_bytes > options.hard_max_bytes) {
    return absl::InvalidArgumentError("hard_max_bytes must be at least retention_bytes");
  }
  if (options.max_age > absl::ZeroDuration() && options.dedupe_window > options.max_age) {
    return absl::InvalidArgumentError("dedupe_window must not be longer than max_age");
  }
  if (options.hard_max_bytes > static_cast<uint64_t>(INT64_MAX)) {
    return absl::InvalidArgumentError("hard_max_bytes is too large");
  }
  for (absl::Duration d :
       {options.connect_timeout, options.request_timeout, options.reconnect_wait}) {
    if (d < absl::Milliseconds(1) || d == absl::InfiniteDuration()) {
      return absl::InvalidArgumentError(
          "connect_timeout, request_timeout and reconnect_wait must be finite, at least 1ms");
    }
  }
  std::unique_ptr<JetStreamEventLog> log(new JetStreamEventLog(std::move(options)));
  if (absl::Status s = log->Connect(); !s.ok()) return s;
  if (absl::Status s = log->LoadStreams(); !s.ok()) return s;
  JetStreamEventLog* self = log.get();
  log->writer_ = std::thread([self] { self->WriterLoop(); });
  log->completer_ = std::thread([self] { self->CompleterLoop(); });
  if (IsPeriod(log->options_.retention_check_interval)) {
    log->retention_ = std::make_unique<relay::Worker>("retention", [self] {
      if (absl::Status s = self->RunRetentionOnce(); !s.ok()) {
        RELAY_LOG(Error, "storage: retention failed", {{"error", s.ToString()}});
      }
      return self->options_.retention_check_interval;
    });
    log->retention_->Start(log->options_.retention_check_interval);
  }
  return log;
}

JetStreamEventLog::JetStreamEventLog(Options options) : options_(std::move(options)) {}

JetStreamEventLog::~JetStreamEventLog() {
  Close().IgnoreError();
  replies_.reset();  // the connection is closed: no reply comes any more
  if (publish_js_ != nullptr) jsCtx_Destroy(publish_js_);
  if (publish_nc_ != nullptr) natsConnection_Destroy(publish_nc_);
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (nc_ != nullptr) natsConnection_Destroy(nc_);
}

absl::Status JetStreamEventLog::Connect() {
  JetStreamConnectOptions connect;
  connect.servers = options_.servers;
  connect.connect_timeout = options_.connect_timeout;
  connect.request_timeout = options_.request_timeout;
  connect.reconnect_wait = options_.reconnect_wait;
  if (absl::Status s = ConnectJetStream(connect, &nc_, &js_); !s.ok()) return s;
  max_payload_ = natsConnection_GetMaxPayload(nc_);
  // The writer's async publishes have a connection of their own (one
  // connection keeps their order), so that reads do not queue behind them
  // in the server, nor they behind reads.
  jsCtx* unused = nullptr;
  if (absl::Status s = ConnectJetStream(connect, &publish_nc_, &unused); !s.ok()) return s;
  jsCtx_Destroy(unused);
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = Millis(options_.request_timeout);
  opts.PublishAsync.AckHandler = &JetStreamEventLog::OnPublishAck;
  opts.PublishAsync.AckHandlerClosure = this;
  if (natsStatus s = natsConnection_JetStream(&publish_js_, publish_nc_, &opts); s != NATS_OK) {
    return NatsUnavailable("cannot make a JetStream publishing context", s);
  }
  absl::StatusOr<std::unique_ptr<ReadReplies>> replies = ReadReplies::Subscribe(nc_);
  if (!replies.ok()) return replies.status();
  replies_ = *std::move(replies);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JetStreamEventLog::RelayStream>> JetStreamEventLog::ListRelayStreams()
    const {
  std::vector<RelayStream> out;
  jsStreamInfoList* list = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_Streams(&list, js_, nullptr, &code);
  if (s == NATS_NOT_FOUND) return out;  // no stream at all
  if (s != NATS_OK) return NatsUnavailable("cannot list JetStream streams", s, code);
  for (int i = 0; i < list->Count; ++i) {
    const jsStreamInfo* si = list->List[i];
    const char* description = si->Config->Description;
    std::optional<std::string> topic =
        TopicForStream(si->Config->Name, description != nullptr ? description : "");
    if (!topic.has_value()) continue;
    RelayStream& r = out.emplace_back();
    r.topic = std::move(*topic);
    r.stream = si->Config->Name;
    r.state.exists = true;
    r.state.first_seq = si->State.FirstSeq;
    r.state.last_seq = si->State.LastSeq;
    r.state.msgs = si->State.Msgs;
    r.state.bytes = si->State.Bytes;
    r.state.direct = DirectGetsAreCurrent(si);
    r.bytes = si->State.Bytes;
    if (r.state.msgs > 0) {
      r.first_time = absl::FromUnixNanos(si->State.FirstTime);
      r.last_time = absl::FromUnixNanos(si->State.LastTime);
    }
  }
  jsStreamInfoList_Destroy(list);
  return out;
}

absl::Status JetStreamEventLog::LoadStreams() {
  absl::StatusOr<std::vector<RelayStream>> streams = ListRelayStreams();
  if (!streams.ok()) return streams.status();
  for (const RelayStream& r : *streams) {
    Remember(r.topic, r.state);
    RELAY_LOG(
        Info, "storage: topic loaded",
        {{"topic", r.topic},
         {"stream", r.stream},
         {"offsets", absl::StrCat(r.state.msgs == 0 ? r.state.last_seq : r.state.first_seq - 1,
                                  "..", r.state.last_seq)},
         {"events", absl::StrCat(r.state.msgs)}});
  }
  return absl::OkStatus();
}

void JetStreamEventLog::Remember(absl::string_view topic, const StreamState& state) const {
  absl::MutexLock lock(&streams_mu_);
  StreamState& cached = streams_[topic];
  // Acks and stream infos race: the cache never moves backwards.
  if (state.last_seq >= cached.last_seq) {
    cached = state;
  }
  cached.exists = cached.exists || state.exists;
}

void JetStreamEventLog::Doubt(absl::string_view topic) {
  absl::MutexLock lock(&streams_mu_);
  auto it = streams_.find(topic);
  if (it != streams_.end()) it->second.exists = false;
}

JetStreamEventLog::StreamState JetStreamEventLog::Cached(absl::string_view topic) const {
  absl::MutexLock lock(&streams_mu_);
  auto it = streams_.find(topic);
  return it == streams_.end() ? StreamState() : it->second;
}

absl::StatusOr<JetStreamEventLog::StreamState> JetStreamEventLog::FetchStreamState(
    absl::string_view topic) const {
  const std::string stream = StreamNameForTopic(topic);
  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, &code);
  if (s != NATS_OK) {
    if (code == JSStreamNotFoundErr) {
      return absl::NotFoundError(absl::StrCat("no stream for topic ", topic));
    }
    return NatsUnavailable(absl::StrCat("cannot get stream ", stream), s, code);
  }
  const char* description = si->Config->Description;
  std::optional<std::string> owner =
      TopicForStream(stream, description != nullptr ? description : "");
  if (owner != topic) {
    jsStreamInfo_Destroy(si);
    return absl::FailedPreconditionError(absl::StrCat(
        "JetStream stream ", stream, " does not belong to topic ", topic, " (its description is ",
        Excerpt(description != nullptr ? description : ""), ")"));
  }
  StreamState state;
  state.exists = true;
  state.first_seq = si->State.FirstSeq;
  state.last_seq = si->State.LastSeq;
  state.msgs = si->State.Msgs;
  state.bytes = si->State.Bytes;
  state.direct = DirectGetsAreCurrent(si);
  jsStreamInfo_Destroy(si);
  Remember(topic, state);
  return state;
}

void JetStreamEventLog::Append(const std::string& topic, std::vector<Event> events,
                               AppendDone done) {
  Append(topic, std::move(events), std::move(done), nullptr);
}

void JetStreamEventLog::Append(const std::string& topic, std::vector<Event> events, AppendDone done,
                               const std::shared_ptr<AppendOrigin>& origin) {
  // Serialize here, on the caller's thread, as the file log does.
  Batch batch;
  batch.topic = topic;
  batch.origin = origin;
  if (!IsValidTopicName(topic)) {
    batch.error = absl::InvalidArgumentError(
        absl::StrCat("topic name ", Excerpt(topic), " is not [a-z0-9._-]{1,255}"));
  }
  const int64_t max_event_bytes = max_payload_ - kHeaderAllowance;
  for (Event& event : events) {
    if (!batch.error.ok()) break;
    event.clear_topic();
    event.clear_offset();
    event.clear_publish_time();
    std::string payload = event.SerializeAsString();
    if (static_cast<int64_t>(payload.size()) > max_event_bytes) {
      batch.error = absl::InvalidArgumentError(absl::StrCat(
          "event ", Excerpt(event.id()), " is ", payload.size(), " bytes, larger than ",
          max_event_bytes, " (the NATS server's max_payload less room for headers)"));
      break;
    }
    batch.payloads.push_back(std::move(payload));
    batch.ids.push_back(event.id().empty() ? std::string() : MsgIdForEventId(event.id()));
  }
  if (batch.error.ok() && batch.ids.size() > 1) {
    absl::flat_hash_map<absl::string_view, size_t> first;
    for (size_t i = 0; i < batch.ids.size(); ++i) {
      if (batch.ids[i].empty()) continue;
      auto [it, inserted] = first.emplace(batch.ids[i], i);
      if (inserted) continue;
      if (batch.repeat_of.empty()) batch.repeat_of.assign(batch.ids.size(), kNotARepeat);
      batch.repeat_of[i] = it->second;
    }
  }
  if (batch.error.ok() && origin != nullptr && origin->failed()) {
    batch.error = absl::UnavailableError(kOriginFailed);
  }
  batch.done = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      queue_.push_back(std::move(batch));
      return;
    }
  }
  batch.done(absl::UnavailableError("event log is closed"));
}

size_t JetStreamEventLog::publishes_in_flight() {
  absl::MutexLock lock(&acks_mu_);
  return awaiting_.size();
}

uint64_t JetStreamEventLog::DurableEnd(absl::string_view topic) const {
  return Cached(topic).last_seq;
}

uint64_t JetStreamEventLog::FirstOffset(absl::string_view topic) const {
  const StreamState state = Cached(topic);
  return state.msgs == 0 ? state.last_seq : state.first_seq - 1;
}

absl::StatusOr<std::vector<Event>> JetStreamEventLog::Read(absl::string_view topic, uint64_t from,
                                                           size_t max_events,
                                                           size_t max_bytes) const {
  if (max_events == 0) return std::vector<Event>();
  const StreamState cached = Cached(topic);
  if (cached.exists && cached.msgs > 0 && from < cached.last_seq) {
    // The acks already told where the events are: no stream info request.
    // A hole at the start means the cache is behind the limits: ask.
    absl::StatusOr<std::vector<Event>> read =
        ReadRange(topic, cached, from, max_events, max_bytes, /*skip_leading_holes=*/false);
    if (!read.ok() || !read->empty()) return read;
  }
  absl::StatusOr<StreamState> state = FetchStreamState(topic);
  if (absl::IsNotFound(state.status())) return std::vector<Event>();
  if (!state.ok()) return state.status();
  return ReadRange(topic, *state, from, max_events, max_bytes, /*skip_leading_holes=*/true);
}

absl::StatusOr<std::vector<Event>> JetStreamEventLog::ReadRange(absl::string_view topic,
                                                                const StreamState& state,
                                                                uint64_t from, size_t max_events,
                                                                size_t max_bytes,
                                                                bool skip_leading_holes) const {
  if (state.msgs == 0 || from >= state.last_seq) return std::vector<Event>();
  ReadResult out(topic, StreamNameForTopic(topic), max_events, max_bytes, skip_leading_holes);
  const uint64_t first = std::max(from + 1, state.first_seq);
  // Never ask for more than max_events, nor past the acknowledged end.
  const uint64_t last =
      state.last_seq - first >= max_events ? first + (max_events - 1) : state.last_seq;
  // Requests in flight: about max_bytes' worth at the stream's average
  // size, so big events are not fetched only to be dropped.
  const uint64_t average = std::max<uint64_t>(1, state.bytes / std::max<uint64_t>(1, state.msgs));
  const uint64_t window = std::min<uint64_t>(max_bytes / average, kReadWindow - 1) + 1;
  absl::Status read = ReadPipelined(out, first, last, state.last_seq, window, state.direct);
  if (!read.ok()) return read;
  return out.Take();
}

JetStreamEventLog::ReadResult::ReadResult(absl::string_view topic, std::string stream,
                                          size_t max_events, size_t max_bytes,
                                          bool skip_leading_holes)
    : topic_(topic),
      stream_(std::move(stream)),
      max_events_(max_events),
      max_bytes_(max_bytes),
      skip_leading_holes_(skip_leading_holes) {}

absl::StatusOr<bool> JetStreamEventLog::ReadResult::Add(uint64_t seq, const char* data, int size,
                                                        absl::Time stored) {
  if (events_.size() >= max_events_) return false;
  if (!events_.empty() && bytes_ + static_cast<size_t>(size) > max_bytes_) return false;
  Event event;
  if (!event.ParseFromArray(data, size)) {
    return absl::DataLossError(absl::StrCat("offset ", seq - 1, " of topic ", topic_, " (stream ",
                                            stream_, ") is not a Relay event"));
  }
  event.set_topic(topic_);
  event.set_offset(seq - 1);
  ToTimestamp(stored, event.mutable_publish_time());
  bytes_ += static_cast<size_t>(size);
  events_.push_back(std::move(event));
  return events_.size() < max_events_;
}

namespace {

// One answer of a pipelined get: the stored event, or none at that sequence.
struct StoredMsg {
  bool found = false;
  absl::string_view data;  // into the reply, or into `decoded`
  std::string decoded;
  absl::Time time;
};

// The string value of "key" in a JetStream API reply. Only for values
// that never hold a quote or an escape (base64, RFC 3339 times).
std::optional<absl::string_view> JsonString(absl::string_view json, absl::string_view key) {
  const std::string needle = absl::StrCat("\"", key, "\":\"");
  const size_t at = json.find(needle);
  if (at == absl::string_view::npos) return std::nullopt;
  const size_t from = at + needle.size();
  const size_t end = json.find('"', from);
  if (end == absl::string_view::npos) return std::nullopt;
  return json.substr(from, end - from);
}

// UNAVAILABLE "<what> answered <status> <description>" for a status-only
// reply (503: no responders, no leader now), OK for a message.
absl::Status StatusReplyError(natsMsg* msg, absl::string_view what) {
  const char* status = Header(msg, "Status");
  if (status == nullptr) return absl::OkStatus();
  const char* description = Header(msg, "Description");
  return absl::UnavailableError(absl::StrCat(what, " answered ", status, " ",
                                             description != nullptr ? Excerpt(description) : ""));
}

// A direct get's reply: the message itself with Nats-* headers, or a
// status (404: none at that sequence).
absl::StatusOr<StoredMsg> DecodeDirectReply(natsMsg* msg) {
  StoredMsg out;
  if (const char* status = Header(msg, "Status");
      status != nullptr && absl::string_view(status) == "404") {
    return out;
  }
  if (absl::Status s = StatusReplyError(msg, "direct get"); !s.ok()) return s;
  const char* stamp = Header(msg, "Nats-Time-Stamp");
  std::string error;
  if (stamp == nullptr || !absl::ParseTime(absl::RFC3339_full, stamp, &out.time, &error)) {
    return absl::DataLossError("a direct get's reply has no valid Nats-Time-Stamp");
  }
  out.found = true;
  out.data = absl::string_view(natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  return out;
}

// A $JS.API.STREAM.MSG.GET reply (JSON, answered by the stream leader):
// {"message":{"seq":..,"data":"<base64>","time":"<RFC 3339>",..}} or
// {"error":{"code":..,"err_code":..,"description":".."}}.
absl::StatusOr<StoredMsg> DecodeLeaderReply(natsMsg* msg) {
  StoredMsg out;
  if (absl::Status s = StatusReplyError(msg, "message get"); !s.ok()) return s;
  const absl::string_view json(natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  if (json.find("\"error\":{") != absl::string_view::npos) {
    if (json.find(absl::StrCat("\"err_code\":", JSNoMessageFoundErr)) != absl::string_view::npos) {
      return out;
    }
    return absl::UnavailableError(absl::StrCat("the stream leader answered ", Excerpt(json)));
  }
  const std::optional<absl::string_view> time = JsonString(json, "time");
  std::string error;
  if (!time.has_value() ||
      !absl::ParseTime(absl::RFC3339_full, std::string(*time), &out.time, &error)) {
    return absl::DataLossError("a stream leader's reply has no valid time");
  }
  // An empty payload has no "data" at all.
  if (const std::optional<absl::string_view> data = JsonString(json, "data"); data.has_value()) {
    if (!absl::Base64Unescape(*data, &out.decoded)) {
      return absl::DataLossError("a stream leader's reply has data that is not base64");
    }
  }
  out.found = true;
  out.data = out.decoded;
  return out;
}

}  // namespace

absl::Status JetStreamEventLog::ReadPipelined(ReadResult& out, uint64_t first, uint64_t last,
                                              uint64_t end, uint64_t window, bool direct) const {
  // Replies come in any order.
  std::unique_ptr<ReadReplies::Read> replies = replies_->Begin();
  const std::string subject =
      absl::StrCat(direct ? "$JS.API.DIRECT.GET." : "$JS.API.STREAM.MSG.GET.", out.stream());
  std::map<uint64_t, MsgPtr> arrived;
  uint64_t next_request = first;
  uint64_t next = first;  // the next sequence to hand to `out`
  while (next <= last) {
    for (; next_request <= last && next_request < next + window; ++next_request) {
      const std::string reply = replies->ReplySubject(next_request);
      const std::string body = absl::StrCat("{\"seq\":", next_request, "}");
      if (natsStatus s = natsConnection_PublishRequest(nc_, subject.c_str(), reply.c_str(),
                                                       body.data(), static_cast<int>(body.size()));
          s != NATS_OK) {
        return NatsUnavailable(
            absl::StrCat("cannot ask for offset ", next_request - 1, " of topic ", out.topic()), s);
      }
    }
    absl::StatusOr<ReadReplies::Reply> reply = replies->Next(options_.request_timeout);
    if (!reply.ok()) {
      return absl::UnavailableError(absl::StrCat("cannot read offset ", next - 1, " of topic ",
                                                 out.topic(), ": no answer within ",
                                                 absl::FormatDuration(options_.request_timeout)));
    }
    const uint64_t seq = reply->first;
    if (seq < next || seq >= next_request) continue;  // not asked for (or answered twice)
    arrived.emplace(seq, std::move(reply->second));
    for (auto it = arrived.find(next); it != arrived.end(); it = arrived.find(next)) {
      absl::StatusOr<StoredMsg> stored =
          direct ? DecodeDirectReply(it->second.get()) : DecodeLeaderReply(it->second.get());
      if (!stored.ok()) {
        return absl::Status(stored.status().code(),
                            absl::StrCat("cannot read offset ", next - 1, " of topic ", out.topic(),
                                         ": ", stored.status().message()));
      }
      absl::StatusOr<bool> more;
      if (stored->found) {
        more =
            out.Add(next, stored->data.data(), static_cast<int>(stored->data.size()), stored->time);
      } else {
        // Removed by the limits meanwhile: skip to the oldest (when the
        // caller's state is fresh); one answer holds consecutive offsets
        // only, so stop at a later hole.
        more = out.empty() && out.skip_leading_holes();
        // A skipped hole does not count against max_events.
        if (more.ok() && *more && last < end) ++last;
      }
      arrived.erase(it);
      if (!more.ok()) return more.status();
      ++next;
      if (!*more) return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

uint64_t JetStreamEventLog::OffsetForTime(absl::string_view topic, absl::Time t) const {
  absl::StatusOr<StreamState> state = FetchStreamState(topic);
  if (absl::IsNotFound(state.status())) return 0;
  absl::StatusOr<uint64_t> seq =
      state.ok() ? FirstSeqAtOrAfter(StreamNameForTopic(topic), *state, t) : state.status();
  if (!seq.ok()) {
    RELAY_LOG(Warn, "storage: OffsetForTime falls back to the durable end",
              {{"topic", std::string(topic)}, {"error", seq.status().ToString()}});
    return DurableEnd(topic);
  }
  return *seq - 1;
}

absl::StatusOr<uint64_t> JetStreamEventLog::FirstSeqAtOrAfter(const std::string& stream,
                                                              const StreamState& state,
                                                              absl::Time t) const {
  if (state.msgs == 0) return state.last_seq + 1;
  // Binary search for the first sequence stored at or after `t`, over
  // JetStream's stored timestamps (which a single leader writes in order).
  uint64_t lo = state.first_seq;
  uint64_t hi = state.last_seq + 1;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    natsMsg* msg = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s = js_GetMsg(&msg, js_, stream.c_str(), mid, nullptr, &code);
    if (s != NATS_OK) {
      if (code == JSNoMessageFoundErr) {  // removed meanwhile: older than anything left
        lo = mid + 1;
        continue;
      }
      return NatsUnavailable(absl::StrCat("cannot read sequence ", mid, " of stream ", stream), s,
                             code);
    }
    const absl::Time stored = absl::FromUnixNanos(natsMsg_GetTime(msg));
    natsMsg_Destroy(msg);
    if (stored >= t) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

std::vector<TopicStats> JetStreamEventLog::ListTopics() const {
  std::vector<TopicStats> all;
  absl::StatusOr<std::vector<RelayStream>> streams = ListRelayStreams();
  if (streams.ok()) {
    for (const RelayStream& r : *streams) {
      Remember(r.topic, r.state);
      TopicStats stats;
      stats.name = r.topic;
      stats.events = r.state.msgs;
      stats.bytes = r.bytes;
      stats.forced_deleted_events = ForcedDeleted(r.topic);
      stats.end_offset = r.state.last_seq;
      stats.first_offset = r.state.msgs == 0 ? r.state.last_seq : r.state.first_seq - 1;
      stats.first_time = r.first_time;
      stats.last_time = r.last_time;
      all.push_back(std::move(stats));
    }
  } else {
    RELAY_LOG(Warn, "storage: ListTopics answers from the cache",
              {{"error", std::string(streams.status().message())}});
    absl::MutexLock lock(&streams_mu_);
    for (const auto& [name, state] : streams_) {
      if (!state.exists && state.last_seq == 0) continue;  // never held an event here
      TopicStats stats;
      stats.name = name;
      stats.events = state.msgs;
      stats.end_offset = state.last_seq;
      stats.first_offset = state.msgs == 0 ? state.last_seq : state.first_seq - 1;
      all.push_back(std::move(stats));
    }
  }
  std::sort(all.begin(), all.end(),
            [](const TopicStats& a, const TopicStats& b) { return a.name < b.name; });
  return all;
}

void JetStreamEventLog::SetDurabilityListener(DurabilityListener listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::make_shared<const DurabilityListener>(std::move(listener));
}

void JetStreamEventLog::SetRetentionFloor(const std::string& topic, uint64_t offset) {
  absl::MutexLock lock(&floors_mu_);
  retained_[topic].floor = offset;
}

uint64_t JetStreamEventLog::ForcedDeleted(absl::string_view topic) const {
  absl::MutexLock lock(&floors_mu_);
  auto it = retained_.find(topic);
  return it == retained_.end() ? 0 : it->second.forced_deleted_events;
}

absl::Status JetStreamEventLog::Close() {
  absl::MutexLock close_lock(&close_mu_);
  if (!closed_) {
    // Its passes talk to the server: stop it while the connection is up.
    if (retention_ != nullptr) retention_->Stop();
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
    }
    if (writer_.joinable()) writer_.join();
    // Every publish has its ack or its error within request_timeout (the
    // client times out what the server never answers).
    if (completer_.joinable()) completer_.join();
    // Every publish was acknowledged or failed: nothing is left to drain
    // but what the client has buffered.
    for (natsConnection* nc : {publish_nc_, nc_}) {
      if (nc == nullptr) continue;
      natsConnection_FlushTimeout(nc, Millis(options_.request_timeout));
      natsConnection_Close(nc);
    }
    closed_ = true;
  }
  return absl::OkStatus();
}

// ---- Writer thread.

bool JetStreamEventLog::HasWork() const { return !queue_.empty() || closing_; }

void JetStreamEventLog::WriterLoop() {
  while (true) {
    std::vector<Batch> taken;
    bool closing;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &JetStreamEventLog::HasWork));
      taken.swap(queue_);
      closing = closing_;
    }
    if (closing && natsConnection_Status(publish_nc_) != NATS_CONN_STATUS_CONNECTED) {
      // Each publish would wait out its timeout in the reconnect buffer:
      // a shutdown fails them at once instead.
      for (Batch& batch : taken) {
        if (batch.error.ok()) {
          batch.error = absl::UnavailableError(
              "event log closed while NATS is unreachable: the batch was not sent");
        }
      }
    }
    Publish(taken);
    if (closing) {
      absl::MutexLock lock(&acks_mu_);
      writer_done_ = true;
      break;
    }
  }
}

bool JetStreamEventLog::HeadAnsweredOrDone() const {
  return in_flight_.empty() ? writer_done_ : in_flight_.front()->pending == 0;
}

void JetStreamEventLog::CompleterLoop() {
  while (true) {
    std::unique_ptr<Batch> batch;
    bool head_answered;
    {
      absl::MutexLock lock(&acks_mu_);
      head_answered = acks_mu_.AwaitWithTimeout(
          absl::Condition(this, &JetStreamEventLog::HeadAnsweredOrDone), options_.request_timeout);
      if (head_answered) {
        if (in_flight_.empty()) break;  // the writer is done, and so is every batch
        batch = std::move(in_flight_.front());
        in_flight_.pop_front();
      }
    }
    if (!head_answered) {
      // The client times out every publish the server leaves unanswered,
      // but not on a connection it closed for good (a second auth error,
      // an unknown -ERR): nothing would answer those any more.
      if (natsConnection_IsClosed(publish_nc_)) {
        FailAwaiting("the NATS publishing connection is closed");
      }
      continue;
    }
    std::shared_ptr<const DurabilityListener> listener;
    {
      absl::MutexLock lock(&mu_);
      listener = listener_;
    }
    const uint64_t end_before = DurableEnd(batch->topic);
    absl::StatusOr<std::vector<AppendResult>> result = Outcome(*batch);
    const bool stored =
        result.ok() && std::any_of(result->begin(), result->end(),
                                   [](const AppendResult& r) { return !r.duplicate; });
    const bool advanced = DurableEnd(batch->topic) > end_before;
    batch->done(std::move(result));
    if ((stored || advanced) && listener != nullptr && *listener) {
      (*listener)(batch->topic, DurableEnd(batch->topic));
    }
  }
}

absl::Status JetStreamEventLog::EnsureStream(const std::string& topic) {
  if (Cached(topic).exists) return absl::OkStatus();
  const std::string stream = StreamNameForTopic(topic);
  const std::string subject = SubjectForTopic(topic);
  const std::string description = StreamDescriptionForTopic(topic);
  const char* subjects[] = {subject.c_str()};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = stream.c_str();
  config.Description = description.c_str();
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  config.Retention = js_LimitsPolicy;
  config.Discard = js_DiscardOld;
  config.Replicas = options_.replicas;
  config.AllowDirect = true;  // Read's direct gets
  config.Duplicates = absl::ToInt64Nanoseconds(options_.dedupe_window);
  config.MaxAge = absl::ToInt64Nanoseconds(options_.max_age);
  config.MaxBytes =
      options_.hard_max_bytes == 0 ? -1 : static_cast<int64_t>(options_.hard_max_bytes);
  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_AddStream(&si, js_, &config, nullptr, &code);
  if (s == NATS_OK) {
    StreamState state;
    state.exists = true;
    state.first_seq = si->State.FirstSeq;
    state.last_seq = si->State.LastSeq;
    state.msgs = si->State.Msgs;
    state.bytes = si->State.Bytes;
    state.direct = DirectGetsAreCurrent(si);
    jsStreamInfo_Destroy(si);
    bool recreated = false;
    bool doubted = false;
    {
      absl::MutexLock lock(&streams_mu_);
      auto it = streams_.find(topic);
      doubted = it != streams_.end();
      // An existing stream answers AddStream with its state too (the check
      // after a publish no stream answered). Only a stream that never held
      // an event is a new one: then its offsets are the truth, even below
      // the cached ones (Remember() never moves backwards).
      recreated = doubted && state.last_seq == 0 && it->second.last_seq > 0;
      if (recreated) it->second = state;
    }
    if (recreated) {
      MadeAnew(topic);
    } else {
      Remember(topic, state);
      RELAY_LOG(Info, doubted ? "storage: stream checked" : "storage: stream created",
                {{"topic", topic},
                 {"stream", stream},
                 {"replicas", absl::StrCat(options_.replicas)},
                 {"last_offset", absl::StrCat(state.last_seq)}});
    }
    return absl::OkStatus();
  }
  if (code == JSStreamNameExistErr) {
    // Another broker created it first (or it exists with other settings,
    // which are then kept): check it is this topic's.
    absl::StatusOr<StreamState> state = FetchStreamState(topic);
    return state.status();
  }
  return NatsUnavailable(absl::StrCat("cannot create stream ", stream, " for topic ", topic), s,
                         code);
}

void JetStreamEventLog::Publish(std::vector<Batch>& taken) {
  // A topic whose stream cannot be made fails its other batches taken
  // with it at once rather than each after its own timeout.
  absl::flat_hash_map<std::string, absl::Status> unready;
  for (Batch& taken_batch : taken) {
    auto owned = std::make_unique<Batch>(std::move(taken_batch));
    Batch* batch = owned.get();
    const size_t events = batch->payloads.size();
    batch->results.resize(events);
    batch->acked.assign(events, false);
    Chain* chain = nullptr;
    if (batch->error.ok() && events > 0) {
      if (auto it = unready.find(batch->topic); it != unready.end()) {
        batch->error = absl::Status(it->second.code(), it->second.message());  // its own (Outcome)
      } else if (absl::Status s = EnsureStream(batch->topic); !s.ok()) {
        unready.emplace(batch->topic, s);
        batch->error = std::move(s);
      } else if (batch->origin != nullptr && batch->origin->failed()) {
        batch->error = absl::UnavailableError(kOriginFailed);
      } else if (absl::StatusOr<Chain*> ready = ReadyChain(batch->topic); !ready.ok()) {
        // Not asked again for each batch behind it (each could wait out a
        // request_timeout).
        unready.emplace(batch->topic, ready.status());
        batch->error = ready.status();
      } else {
        chain = *ready;
        batch->chain = chain;  // not shared yet: in_flight_ takes it below
        batch->chain_epoch = chain->epoch;
      }
    }
    if (batch->error.code() == absl::StatusCode::kUnavailable && batch->origin != nullptr) {
      batch->origin->MarkFailed();
    }
    const bool publish = batch->error.ok() && events > 0;
    const std::string stream = publish ? StreamNameForTopic(batch->topic) : "";
    const std::string subject = publish ? SubjectForTopic(batch->topic) : "";
    {
      absl::MutexLock lock(&acks_mu_);
      batch->pending = publish ? events : 0;
      in_flight_.push_back(std::move(owned));
    }
    // Once its last event is answered the completer may free the batch:
    // nothing here reads it after the last PublishEvent.
    const std::string topic = publish ? batch->topic : std::string();
    for (size_t i = 0; publish && i < events; ++i) PublishEvent(*batch, i, stream, subject, chain);
    if (publish) {
      // Broken by this batch (a lone publish that timed out, say): the
      // topic's other batches of this round fail at once instead of each
      // reading the stream and waiting out a publish of its own.
      absl::MutexLock lock(&acks_mu_);
      if (chain->broken) {
        unready.emplace(topic, absl::UnavailableError(absl::StrCat("a publish to topic ", topic,
                                                                   " failed just before")));
      }
    }
  }
}

absl::StatusOr<JetStreamEventLog::Chain*> JetStreamEventLog::ReadyChain(const std::string& topic) {
  Chain* chain;
  {
    absl::MutexLock lock(&acks_mu_);
    chain = &chains_[topic];
    if (!chain->broken) return chain;
    if (chain->awaiting > 0) {
      return absl::UnavailableError(absl::StrCat(
          chain->awaiting, " publishes to topic ", topic,
          " are not answered yet after one failed: this batch is not sent, so that it cannot be "
          "stored before them"));
    }
  }
  // While the publishing connection is away its publishes wait in the
  // client's reconnect buffer and would reach the stream after the read
  // below. Safe even so (the first publish expects the sequence read, and
  // fails when they went in first), but each would wait out its timeout.
  if (natsConnection_Status(publish_nc_) != NATS_CONN_STATUS_CONNECTED) {
    return absl::UnavailableError(
        absl::StrCat("the NATS publishing connection is not connected: topic ", topic,
                     " takes no batch until it is"));
  }
  // Nothing of the topic is in flight and only this thread sends: no answer
  // changes the chain meanwhile.
  const uint64_t known_end = Cached(topic).last_seq;
  absl::StatusOr<StreamState> state = FetchStreamState(topic);
  if (!state.ok()) {
    // Gone (deleted by hand): the next append creates it again.
    if (absl::IsNotFound(state.status())) Doubt(topic);
    return absl::UnavailableError(absl::StrCat("cannot read where the stream of topic ", topic,
                                               " ends: ", state.status().message()));
  }
  if (state->last_seq < known_end) {
    // Ends before events it acknowledged (a purge keeps the last sequence):
    // deleted and made again by someone else since.
    {
      absl::MutexLock lock(&streams_mu_);
      streams_[topic] = *state;
    }
    MadeAnew(topic);
  }
  absl::MutexLock lock(&acks_mu_);
  // A publish that timed out may still be on its way (forwarded late by
  // another server), expecting a place up to the count (0 for a chain never
  // read: nothing is on its way).
  chain->sent_end = chain->last_seq;
  chain->careful_until = absl::Now() + options_.request_timeout;
  chain->broken = false;
  chain->last_seq = state->last_seq;
  chain->anchored = false;
  return chain;
}

void JetStreamEventLog::MadeAnew(const std::string& topic) {
  ForgetChain(topic);
  RELAY_LOG(Warn, "storage: the topic's stream was gone and is created anew; offsets restart",
            {{"topic", topic}, {"stream", StreamNameForTopic(topic)}});
}

void JetStreamEventLog::ForgetChain(const std::string& topic) {
  absl::MutexLock lock(&acks_mu_);
  auto it = chains_.find(topic);
  if (it == chains_.end()) return;
  Chain fresh;
  fresh.epoch = it->second.epoch + 1;
  // The publishes still in flight are answered into this same chain, and
  // each answer counts itself off: zeroing the count here made it wrap
  // around below zero, and ReadyChain refused every later batch of the
  // topic for good ("18446744073709551615 publishes ... are not answered").
  fresh.awaiting = it->second.awaiting;
  it->second = fresh;
  recent_ids_.Forget(&it->second);
  failed_batch_ids_.Forget(&it->second);
}

void JetStreamEventLog::RememberStored(const Batch& batch) {
  const Chain* chain = batch.chain;
  if (chain == nullptr) return;                   // never published
  if (chain->epoch != batch.chain_epoch) return;  // the stream it went to is gone
  const absl::Time now = absl::Now();
  const bool failed = batch.failed_at != SIZE_MAX;
  for (size_t i = 0; i < batch.results.size(); ++i) {
    if (!batch.acked[i] || batch.ids[i].empty()) continue;
    if (!batch.repeat_of.empty() && batch.repeat_of[i] != kNotARepeat) continue;
    const uint64_t seq = batch.results[i].offset + 1;
    if (failed) failed_batch_ids_.Put(chain, batch.ids[i], seq, now);
    recent_ids_.Put(chain, batch.ids[i], seq, now);
  }
}

void JetStreamEventLog::IdMemory::Put(const Chain* chain, const std::string& id, uint64_t seq,
                                      absl::Time at) {
  // A repeat answered as a duplicate does not restart JetStream's window:
  // keep when it was first seen stored.
  if (auto it = entries_.find(id);
      it != entries_.end() && it->second.chain == chain && it->second.seq == seq) {
    return;
  }
  const uint64_t generation = ++generation_;
  entries_.insert_or_assign(id, Entry{chain, seq, at, generation});
  order_.emplace_back(id, generation);
  while (order_.size() > capacity_) {
    auto it = entries_.find(order_.front().first);
    // Put again since, or forgotten: not this place's to erase.
    if (it != entries_.end() && it->second.generation == order_.front().second) entries_.erase(it);
    order_.pop_front();
  }
}

const JetStreamEventLog::IdMemory::Entry* JetStreamEventLog::IdMemory::Find(
    const Chain* chain, absl::string_view id) const {
  auto it = entries_.find(id);
  return it == entries_.end() || it->second.chain != chain ? nullptr : &it->second;
}

void JetStreamEventLog::IdMemory::Forget(const Chain* chain) {
  absl::erase_if(entries_, [&](const auto& entry) { return entry.second.chain == chain; });
}

bool JetStreamEventLog::RoomInFlight() const {
  return awaiting_.empty() ||
         (awaiting_.size() < kMaxInFlight && awaiting_bytes_ < kMaxInFlightBytes);
}

void JetStreamEventLog::FailAwaiting(absl::string_view why) {
  absl::MutexLock lock(&acks_mu_);
  for (auto& [msg, awaiting] : awaiting_) {
    awaiting.chain->awaiting--;
    awaiting.chain->broken = true;
    Answer(*awaiting.batch, awaiting.index, absl::UnavailableError(why));
  }
  awaiting_.clear();
  awaiting_bytes_ = 0;
}

void JetStreamEventLog::PublishEvent(Batch& batch, size_t index, const std::string& stream,
                                     const std::string& subject, Chain* chain) {
  if (!batch.repeat_of.empty() && batch.repeat_of[index] != kNotARepeat) {
    // Outcome() gives it the earlier event's offset.
    absl::MutexLock lock(&acks_mu_);
    Answer(batch, index, absl::OkStatus());
    return;
  }
  const std::string& payload = batch.payloads[index];
  const size_t payload_bytes = payload.size();
  // Everything this needs from the batch, taken before the event is
  // registered below: from then on an answer (its ack, or FailAwaiting() on
  // the completer thread) may settle the batch's last event and the
  // completer free the batch.
  const std::string msg_id = batch.ids[index];  // Outcome() reads it too
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, subject.c_str(), nullptr, payload.data(),
                                static_cast<int>(payload_bytes));
  if (s != NATS_OK) {
    absl::MutexLock lock(&acks_mu_);
    chain->broken = true;  // the events after it must not be stored before it
    Answer(batch, index, NatsUnavailable("cannot make a NATS message", s));
    return;
  }
  const natsMsg* key = msg;
  uint64_t expected_last_seq = 0;
  bool send = false;
  bool probe = false;
  {
    // Registered before the publish: its ack may come before the call returns.
    absl::MutexLock lock(&acks_mu_);
    acks_mu_.Await(absl::Condition(this, &JetStreamEventLog::RoomInFlight));
    const IdMemory::Entry* remembered = nullptr;
    if (!msg_id.empty()) {
      remembered = failed_batch_ids_.Find(chain, msg_id);
      if (remembered == nullptr) remembered = recent_ids_.Find(chain, msg_id);
      if (remembered != nullptr && absl::Now() - remembered->at >= options_.dedupe_window) {
        remembered = nullptr;  // JetStream forgot it too
      }
    }
    if (batch.origin != nullptr && batch.origin->failed()) {
      Answer(batch, index, absl::UnavailableError(kOriginFailed));
    } else if (remembered != nullptr) {
      // Stored lately (by an earlier try of this batch, say): a duplicate,
      // as JetStream would answer, without the publish whose duplicate ack
      // would break the chain.
      batch.results[index].offset = remembered->seq - 1;
      batch.results[index].duplicate = true;
      batch.acked[index] = true;
      Answer(batch, index, absl::OkStatus());
    } else if (chain->broken) {
      // An earlier publish failed: this one would expect a sequence the
      // stream may never reach, or land after a gap.
      Answer(batch, index,
             absl::UnavailableError(absl::StrCat("an earlier publish to topic ", batch.topic,
                                                 " failed, so this one was not sent")));
    } else {
      expected_last_seq = chain->last_seq++;
      probe = !chain->anchored;
      chain->awaiting++;
      awaiting_.emplace(key,
                        Awaiting{&batch, index, payload_bytes, chain, expected_last_seq, probe});
      awaiting_bytes_ += payload_bytes;
      send = true;
    }
  }
  if (!send) {
    natsMsg_Destroy(msg);
    return;
  }
  s = natsMsgHeader_Set(msg, kExpectedLastSequence, absl::StrCat(expected_last_seq).c_str());
  if (s == NATS_OK) {
    jsPubOptions pub;
    jsPubOptions_Init(&pub);
    pub.MaxWait = Millis(options_.request_timeout);
    pub.ExpectStream = stream.c_str();
    if (!msg_id.empty()) pub.MsgId = msg_id.c_str();
    s = js_PublishMsgAsync(publish_js_, &msg, &pub);
  }
  if (s != NATS_OK) {
    // Not sent, or sent and taken back: the message is still ours and no
    // ack will come for it.
    absl::Status error = NatsUnavailable("cannot send", s);
    natsMsg_Destroy(msg);
    absl::MutexLock lock(&acks_mu_);
    if (auto it = awaiting_.find(key); it != awaiting_.end()) {
      awaiting_bytes_ -= it->second.bytes;
      it->second.chain->awaiting--;
      it->second.chain->broken = true;
      awaiting_.erase(it);
      Answer(batch, index, std::move(error));
    }
    return;
  }
  if (probe) {
    // Publishes since the chain was read go alone until one is stored at or
    // past the count the chain had before (Chain::anchored): from then on a
    // publish of this log that timed out before and still reaches the
    // stream cannot go in any more (it expects an earlier end), so the
    // count the next ones expect holds. Until then one such late publish
    // could take the place of this one, and the next publish, expecting one
    // more, would go in before this one's retry. MaxWait answers it within
    // request_timeout.
    absl::MutexLock lock(&acks_mu_);
    if (!acks_mu_.AwaitWithTimeout(absl::Condition(&ChainIdle, chain),
                                   options_.request_timeout + absl::Seconds(1))) {
      chain->broken = true;
    }
  }
}

bool JetStreamEventLog::ChainIdle(Chain* chain) { return chain->awaiting == 0; }

void JetStreamEventLog::Answer(Batch& batch, size_t index, absl::Status error) {
  if (!error.ok()) {
    // Before any later batch of the origin is sent (the writer checks under
    // acks_mu_ too).
    if (batch.origin != nullptr) batch.origin->MarkFailed();
    if (index < batch.failed_at) {
      batch.failed_at = index;
      batch.failure = std::move(error);
    }
  }
  batch.pending--;
}

void JetStreamEventLog::OnPublishAck(jsCtx* /*js*/, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error,
                                     void* closure) {
  auto* self = static_cast<JetStreamEventLog*>(closure);
  absl::MutexLock lock(&self->acks_mu_);
  auto it = self->awaiting_.find(msg);
  if (it != self->awaiting_.end()) {
    Batch* const batch = it->second.batch;
    const size_t index = it->second.index;
    Chain* const chain = it->second.chain;
    chain->awaiting--;
    // A duplicate does not move the stream's last sequence, which the
    // publishes after it expected; any other answer but the stored next
    // sequence means the chain no longer holds.
    if (ack != nullptr && ack->Duplicate && it->second.probe) {
      // Sent alone: nothing behind it expected the place it did not take,
      // and the next publish (another probe) expects it instead, or, when
      // the duplicate is stored beyond it (publishes of this log that went
      // in late, after the chain was read), that one's place: the stream
      // ends there at least. A retry so learns its duplicates one by one,
      // in one try; the server still checks what the next one expects.
      chain->last_seq = std::max(it->second.expected_last_seq, ack->Sequence);
    } else if (ack == nullptr || ack->Duplicate ||
               ack->Sequence != it->second.expected_last_seq + 1) {
      chain->broken = true;
    } else if (it->second.expected_last_seq + 1 >= chain->sent_end ||
               absl::Now() >= chain->careful_until) {
      chain->anchored = true;
    }
    self->awaiting_bytes_ -= it->second.bytes;
    self->awaiting_.erase(it);
    if (ack != nullptr) {
      batch->results[index].offset = ack->Sequence - 1;
      batch->results[index].duplicate = ack->Duplicate;
      batch->acked[index] = true;
      self->Answer(*batch, index, absl::OkStatus());
    } else {
      const natsStatus status = error != nullptr ? error->Err : NATS_ERR;
      const int code = error != nullptr ? static_cast<int>(error->ErrCode) : 0;
      std::string text = error != nullptr && error->ErrText != nullptr && *error->ErrText != '\0'
                             ? error->ErrText
                             : natsStatus_GetText(status);
      if (code != 0) absl::StrAppend(&text, " (JetStream error ", code, ")");
      if (status == NATS_NO_RESPONDERS || code == JSStreamNotFoundErr) {
        batch->stream_missing = true;
      }
      self->Answer(*batch, index, absl::UnavailableError(text));
    }
  }
  natsMsg_Destroy(msg);
}

absl::StatusOr<std::vector<AppendResult>> JetStreamEventLog::Outcome(Batch& batch) {
  // Moved, not copied: a Status shared between the completer (which frees
  // the batch) and the thread of `done` would be counted by both, inside
  // libabsl_status, where ThreadSanitizer sees no synchronization.
  if (!batch.error.ok()) return std::move(batch.error);
  // Every event is answered: no callback touches the batch any more.
  for (size_t i = 0; i < batch.repeat_of.size(); ++i) {
    if (batch.repeat_of[i] == kNotARepeat) continue;
    const size_t first = batch.repeat_of[i];
    batch.results[i] = {batch.results[first].offset, true};
    batch.acked[i] = batch.acked[first];
  }
  {
    absl::MutexLock lock(&acks_mu_);
    RememberStored(batch);
  }
  bool added = false;
  StreamState stored;
  uint64_t highest_duplicate = 0;
  for (size_t i = 0; i < batch.results.size(); ++i) {
    if (!batch.acked[i]) continue;
    const uint64_t seq = batch.results[i].offset + 1;
    if (batch.results[i].duplicate) {
      highest_duplicate = std::max(highest_duplicate, seq);
      continue;
    }
    if (!added) {
      added = true;
      stored = Cached(batch.topic);
      if (stored.msgs == 0) stored.first_seq = seq;
    }
    stored.msgs++;
    stored.bytes += batch.payloads[i].size();  // about: JetStream counts headers too
    stored.last_seq = std::max(stored.last_seq, seq);
  }
  if (added) Remember(batch.topic, stored);
  if (highest_duplicate > DurableEnd(batch.topic)) {
    // The stream holds events no ack told the log about (a retry of a
    // batch whose acks were lost): learn them, or readers would stop short.
    if (absl::Status s = FetchStreamState(batch.topic).status(); !s.ok()) {
      RELAY_LOG(Warn, "storage: stream state not refreshed after duplicates past its end",
                {{"topic", batch.topic}, {"error", s.ToString()}});
    }
  }
  if (batch.failed_at == SIZE_MAX) return std::move(batch.results);
  if (batch.stream_missing) {
    // No stream answered: it has no leader for the moment (an election), or
    // it went away (deleted by hand). The next try checks, and creates it if
    // it is gone. The offsets cached stay meanwhile: forgetting them let the
    // acks of batches still in flight rebuild the state from their own
    // offsets, so that FirstOffset() jumped past events the groups had not
    // read (they skipped them as deleted by retention), and DurableEnd()
    // fell to 0.
    Doubt(batch.topic);
    // Nor are the ids seen stored in it trusted until then: a stream made
    // anew holds none of them.
    ForgetChain(batch.topic);
  }
  return absl::UnavailableError(
      absl::StrCat("publish to topic ", batch.topic, " failed at event ", batch.failed_at, " of ",
                   batch.payloads.size(),
                   "; any event of the batch may or may not be stored: ", batch.failure.message()));
}

// ---- Retention (docs/JETSTREAM.md#retention).

absl::Status JetStreamEventLog::RunRetentionOnce() {
  const absl::Time now = options_.clock ? options_.clock() : absl::Now();
  absl::StatusOr<std::vector<RelayStream>> streams = ListRelayStreams();
  if (!streams.ok()) {
    return absl::UnavailableError(absl::StrCat("retention: ", streams.status().message()));
  }
  absl::Status first_error;
  for (const RelayStream& r : *streams) {
    if (retention_ != nullptr && retention_->stopping()) break;
    Remember(r.topic, r.state);
    absl::Status s = RetainStream(r.topic, r.stream, r.state, r.bytes, now);
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  return first_error;
}

absl::Status JetStreamEventLog::RetainStream(const std::string& topic, const std::string& stream,
                                             const StreamState& state, uint64_t bytes,
                                             absl::Time now) {
  const uint64_t first = state.msgs == 0 ? state.last_seq : state.first_seq - 1;
  const uint64_t end = state.last_seq;
  std::optional<uint64_t> floor;
  uint64_t forced = 0;
  {
    // Whatever left the front since the last pass went by the stream's own
    // limits (this pass's purge is recorded below): count the part a group
    // still needed.
    absl::MutexLock lock(&floors_mu_);
    Retained& r = retained_[topic];
    floor = r.floor;
    if (floor.has_value() && r.first_offset.has_value()) {
      const uint64_t protected_from = std::max(*r.first_offset, *floor);
      if (first > protected_from) forced = first - protected_from;
      r.forced_deleted_events += forced;
    }
    r.first_offset = first;
  }
  if (forced > 0) {
    RELAY_LOG(Warn, "storage: the stream's limits deleted unconsumed events",
              {{"topic", topic},
               {"stream", stream},
               {"hard_max_bytes", absl::StrCat(options_.hard_max_bytes)},
               {"floor", absl::StrCat(*floor)},
               {"lost_events", absl::StrCat(forced)},
               {"first_offset", absl::StrCat(first)}});
  }
  if (state.msgs == 0) return absl::OkStatus();

  // Offsets below `cut` may go: what the age and the size allow...
  uint64_t cut = first;
  if (options_.retention_age > absl::ZeroDuration()) {
    absl::StatusOr<uint64_t> seq = FirstSeqAtOrAfter(stream, state, now - options_.retention_age);
    if (!seq.ok()) return seq.status();
    cut = std::max(cut, *seq - 1);
  }
  if (options_.retention_bytes > 0 && bytes > options_.retention_bytes) {
    // JetStream reports the stream's bytes, not each message's: take the
    // average, rounded up, so the estimate deletes no more than needed.
    const uint64_t average = (bytes + state.msgs - 1) / state.msgs;
    const uint64_t over = bytes - options_.retention_bytes;
    cut = std::max(cut, first + (over + average - 1) / average);
  }
  // ... and never at or after the floor.
  if (floor.has_value()) cut = std::min(cut, *floor);
  cut = std::min(cut, end);
  if (cut <= first) return absl::OkStatus();

  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = Millis(options_.request_timeout);
  opts.Stream.Purge.Sequence = cut + 1;  // up to, not including, this sequence
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_PurgeStream(js_, stream.c_str(), &opts, &code);
  if (s != NATS_OK) {
    return NatsUnavailable(
        absl::StrCat("retention: cannot purge stream ", stream, " below offset ", cut), s, code);
  }
  {
    absl::MutexLock lock(&floors_mu_);
    Retained& r = retained_[topic];
    r.first_offset = std::max(r.first_offset.value_or(0), cut);
  }
  // The cache's first offset follows (Remember keeps the newest state).
  absl::Status refreshed = FetchStreamState(topic).status();
  RELAY_LOG(Info, "storage: retention purged events",
            {{"topic", topic},
             {"stream", stream},
             {"events", absl::StrCat(cut - first)},
             {"first_offset", absl::StrCat(cut)}});
  if (!refreshed.ok()) {
    RELAY_LOG(Warn, "storage: stream state not refreshed after a purge",
              {{"topic", topic}, {"error", refreshed.ToString()}});
  }
  return absl::OkStatus();
}

}  // namespace relay::broker
