#include "broker/storage/jetstream_connection.h"

#include <algorithm>
#include <functional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/text.h"

namespace relay::broker {
namespace {

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

// The client's connection callbacks run on its own thread, possibly after
// their owner is gone (a close queues one): they use nothing of it.
void OnDisconnected(natsConnection* nc, void* /*closure*/) {
  if (natsConnection_IsClosed(nc)) return;  // Close(), not a loss
  RELAY_LOG(Warn, "storage: NATS connection lost, reconnecting");
}

void OnReconnected(natsConnection* nc, void* /*closure*/) {
  char url[256] = "";
  natsConnection_GetConnectedUrl(nc, url, sizeof(url));
  RELAY_LOG(Info, "storage: NATS connection back", {{"server", RedactedNatsUrls(url)}});
}

}  // namespace

std::string RedactedNatsUrls(absl::string_view servers) {
  std::vector<std::string> out;
  for (absl::string_view url : absl::StrSplit(servers, ',')) {
    const size_t scheme = url.find("://");
    const size_t start = scheme == absl::string_view::npos ? 0 : scheme + 3;
    // The credentials end at the last '@', as the NATS client reads a URL
    // (a password may hold '/' or '@').
    const size_t at = url.rfind('@');
    if (at == absl::string_view::npos || at < start) {
      out.emplace_back(url);
      continue;
    }
    const absl::string_view userinfo = url.substr(start, at - start);
    const size_t colon = userinfo.find(':');
    const absl::string_view user =
        colon == absl::string_view::npos ? absl::string_view() : userinfo.substr(0, colon + 1);
    out.push_back(absl::StrCat(url.substr(0, start), user, "***", url.substr(at)));
  }
  return absl::StrJoin(out, ",");
}

std::string NatsErrorText(natsStatus status, int code) {
  const char* detail = nats_GetLastError(nullptr);
  std::string text = detail != nullptr && *detail != '\0' ? detail : natsStatus_GetText(status);
  if (code != 0) absl::StrAppend(&text, " (JetStream error ", code, ")");
  return text;
}

absl::Status NatsUnavailable(absl::string_view what, natsStatus status, int code) {
  return absl::UnavailableError(absl::StrCat(what, ": ", NatsErrorText(status, code)));
}

absl::Status ConnectJetStream(const JetStreamConnectOptions& options, natsConnection** nc,
                              jsCtx** js) {
  *nc = nullptr;
  *js = nullptr;
  std::vector<std::string> urls;
  for (absl::string_view url : absl::StrSplit(options.servers, ',')) {
    url = absl::StripAsciiWhitespace(url);
    if (url.empty()) return absl::InvalidArgumentError("empty URL in the NATS server list");
    urls.emplace_back(url);
  }
  std::vector<const char*> url_ptrs;
  for (const std::string& url : urls) url_ptrs.push_back(url.c_str());

  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK)
    s = natsOptions_SetServers(opts, url_ptrs.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK) s = natsOptions_SetName(opts, "relay-broker");
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, Millis(options.connect_timeout));
  // Reconnect forever: a broker outlives a NATS outage, and the requests
  // made meanwhile fail by their own timeout.
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, Millis(options.reconnect_wait));
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, OnDisconnected, nullptr);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, OnReconnected, nullptr);
  if (s != NATS_OK) {
    natsOptions_Destroy(opts);
    return absl::InvalidArgumentError(absl::StrCat(
        "bad NATS options for ", RedactedNatsUrls(options.servers), ": ", NatsErrorText(s)));
  }
  natsConnection* conn = nullptr;
  s = natsConnection_Connect(&conn, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    return NatsUnavailable(absl::StrCat("cannot reach NATS at ", RedactedNatsUrls(options.servers)),
                           s);
  }

  jsOptions js_opts;
  jsOptions_Init(&js_opts);
  js_opts.Wait = Millis(options.request_timeout);
  jsCtx* ctx = nullptr;
  s = natsConnection_JetStream(&ctx, conn, &js_opts);
  if (s != NATS_OK) {
    absl::Status error = NatsUnavailable("cannot make a JetStream context", s);
    natsConnection_Destroy(conn);
    return error;
  }
  jsAccountInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  s = js_GetAccountInfo(&info, ctx, nullptr, &code);
  if (s != NATS_OK) {
    absl::Status error = NatsUnavailable(
        absl::StrCat("JetStream does not answer at ", RedactedNatsUrls(options.servers)), s, code);
    jsCtx_Destroy(ctx);
    natsConnection_Destroy(conn);
    return error;
  }
  jsAccountInfo_Destroy(info);
  *nc = conn;
  *js = ctx;
  return absl::OkStatus();
}

bool IsValidBucketName(absl::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

absl::Status ValidateBucketOptions(absl::string_view servers, int replicas,
                                   absl::string_view bucket) {
  if (absl::StripAsciiWhitespace(servers).empty()) {
    return absl::InvalidArgumentError("no NATS server URL given");
  }
  if (replicas < 1 || replicas > 5) {
    return absl::InvalidArgumentError(absl::StrCat("replicas must be in [1, 5], not ", replicas));
  }
  if (!IsValidBucketName(bucket)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bucket name ", Excerpt(bucket), " is not [A-Za-z0-9_-]+"));
  }
  return absl::OkStatus();
}

namespace {

// How long BindOrCreateBucket keeps trying each of its two steps.
constexpr absl::Duration kBucketSettleTime = absl::Seconds(20);

// Calls `attempt` until it succeeds or kBucketSettleTime has passed, with a
// short pause between tries. Returns whether it succeeded.
bool TryForAWhile(const std::function<bool()>& attempt) {
  const absl::Time give_up = absl::Now() + kBucketSettleTime;
  while (!attempt()) {
    if (absl::Now() >= give_up) return false;
    absl::SleepFor(absl::Milliseconds(200));  // a retry's pause, not a wait for a result
  }
  return true;
}

// One try of BindOrCreateBucket's leader reads: turns the direct gets of
// `bucket` off when it has more than one copy, and then binds *kv again
// (the handle chose direct gets or not when it was bound: perhaps while
// they were allowed, even by an earlier try whose update's answer was lost
// although it took effect; a direct get to a stream that no longer allows
// them is never answered). Binds *kv when it is null.
natsStatus TryLeaderReads(jsCtx* js, const std::string& bucket, kvStore** kv) {
  const std::string stream = absl::StrCat("KV_", bucket);  // nats.c's name for it
  jsStreamInfo* info = nullptr;
  natsStatus s = js_GetStreamInfo(&info, js, stream.c_str(), nullptr, nullptr);
  if (s != NATS_OK) return s;
  bool rebind = *kv == nullptr;
  if (info->Config->Replicas > 1) {
    if (info->Config->AllowDirect) {
      info->Config->AllowDirect = false;
      jsStreamInfo* updated = nullptr;
      s = js_UpdateStream(&updated, js, info->Config, nullptr, nullptr);
      jsStreamInfo_Destroy(updated);
      if (s == NATS_OK) {
        RELAY_LOG(Info, "storage: bucket is read from its leader from now on",
                  {{"bucket", bucket}, {"replicas", absl::StrCat(info->Config->Replicas)}});
      }
    }
    rebind = true;
  }
  jsStreamInfo_Destroy(info);
  if (s != NATS_OK || !rebind) return s;
  if (*kv != nullptr) kvStore_Destroy(*kv);
  *kv = nullptr;
  return js_KeyValue(kv, js, bucket.c_str());
}

// BindOrCreateBucket's leader reads, for *kv bound to `bucket`. A bucket
// just made has no leader for a moment (its raft group is electing one):
// the first requests may time out, so this tries for a while.
absl::Status ReadFromTheLeader(jsCtx* js, const std::string& bucket, kvStore** kv) {
  natsStatus s = NATS_OK;
  if (TryForAWhile([&] { return (s = TryLeaderReads(js, bucket, kv)) == NATS_OK; })) {
    return absl::OkStatus();
  }
  if (*kv != nullptr) kvStore_Destroy(*kv);
  *kv = nullptr;
  return NatsUnavailable(absl::StrCat("cannot read bucket ", bucket, " from its leader"), s);
}

// Binds or creates, as BindOrCreateBucket, without the leader reads.
absl::Status BindOrCreate(jsCtx* js, const std::string& bucket, const char* description,
                          int replicas, kvStore** kv) {
  *kv = nullptr;
  if (js_KeyValue(kv, js, bucket.c_str()) == NATS_OK) return absl::OkStatus();
  *kv = nullptr;
  kvConfig config;
  kvConfig_Init(&config);
  config.Bucket = bucket.c_str();
  config.Description = description;
  config.History = 1;
  config.StorageType = js_FileStorage;
  config.Replicas = replicas;
  natsStatus s = js_CreateKeyValue(kv, js, &config);
  if (s == NATS_OK) {
    RELAY_LOG(Info, "storage: bucket created",
              {{"bucket", bucket}, {"replicas", absl::StrCat(replicas)}});
    return absl::OkStatus();
  }
  absl::Status error = NatsUnavailable(absl::StrCat("cannot create bucket ", bucket), s);
  *kv = nullptr;
  // Another broker may have created it meanwhile (with other settings).
  if (js_KeyValue(kv, js, bucket.c_str()) == NATS_OK) return absl::OkStatus();
  *kv = nullptr;
  return error;
}

}  // namespace

absl::Status BindOrCreateBucket(jsCtx* js, const std::string& bucket, const char* description,
                                int replicas, kvStore** kv) {
  // Two brokers starting together both create the bucket; the one that
  // loses may find the stream busy (made, updated by the other, electing a
  // leader) for a moment, its requests timing out.
  absl::Status s;
  if (!TryForAWhile(
          [&] { return (s = BindOrCreate(js, bucket, description, replicas, kv)).ok(); })) {
    return s;
  }
  return ReadFromTheLeader(js, bucket, kv);
}

absl::string_view KvValue(kvEntry* e) {
  return absl::string_view(static_cast<const char*>(kvEntry_Value(e)),
                           static_cast<size_t>(kvEntry_ValueLen(e)));
}

void CloseJetStream(kvStore* kv, jsCtx* js, natsConnection* nc) {
  if (kv != nullptr) kvStore_Destroy(kv);
  if (js != nullptr) jsCtx_Destroy(js);
  if (nc != nullptr) {
    // Every write was answered (or timed out): nothing is left to drain.
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
  }
}

}  // namespace relay::broker
