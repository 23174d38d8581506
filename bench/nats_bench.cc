// nats_bench: the broker_bench workloads W1, W2-1c and W3 on NATS JetStream
// used directly by the C client, no relay-broker between: what the engine
// gives on its own, beside which broker_bench --broker_flags="--storage=
// jetstream ..." shows what Relay's gRPC face costs (bench/README.md).
//
//   nats_bench --nats=nats://127.0.0.1:4222 --replicas=1 --workload=all --json
//
// The same events as broker_bench (bench_events.h: ids, keys, 256-byte data,
// the serialized relay.events.v1.Event as the payload); each run deletes and
// re-creates stream BENCH (subject "bench", file storage, --replicas copies,
// a 24 h duplicate window: relay-broker's default dedupe window).
// - Publishing: js_PublishMsgAsync with Nats-Msg-Id = the event id, at most
//   --batch x --inflight unacknowledged (broker_bench's window).
// - Consuming: one durable push consumer, ack policy "all", max ack pending
//   --max_in_flight; the callback parses each Event and acks every 500th
//   message and the last one (one ack covers all before it, as one Relay ack
//   message covers a delivery).
// Times are measured as broker_bench measures them (bench/workloads.h).
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/bench_events.h"
#include "bench/bench_report.h"
#include "bench/workloads.h"

ABSL_FLAG(std::string, nats, "nats://127.0.0.1:4222", "NATS server URLs, comma-separated");
ABSL_FLAG(int, replicas, 1, "copies of the stream, 1..5");
ABSL_FLAG(std::string, workload, "all",
          "W1, W2 (= W2-1c), W3 or all, comma-separated; or \"ready\": wait (up to --timeout) "
          "until a stream of --replicas copies can be made, then exit 0");
ABSL_FLAG(uint64_t, events, 200000, "events published in W1 and W2");
ABSL_FLAG(double, rate, 5000, "W3: events per second, on an absolute schedule");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "W3: how long to publish");
ABSL_FLAG(int, runs, 1, "repeat each workload this many times and report the median");
ABSL_FLAG(bool, json, false, "print one JSON document on stdout instead of the human report");
ABSL_FLAG(int, batch, 1000, "with --inflight: publishes unacknowledged at most (batch x inflight)");
ABSL_FLAG(int, inflight, 32, "see --batch");
ABSL_FLAG(uint32_t, max_in_flight, 10000, "the consumer's max ack pending");
ABSL_FLAG(int, payload_bytes, 256, "size of each event's data");
ABSL_FLAG(int, keys, 1000, "distinct event keys");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(120), "hard limit of one run; it fails past it");

namespace relay::bench {
namespace {

constexpr char kStream[] = "BENCH";
constexpr char kSubject[] = "bench";
constexpr int kAckEvery = 500;

struct Options {
  std::string servers;
  int replicas = 1;
};

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

std::string NatsText(natsStatus s) {
  const char* last = nats_GetLastError(nullptr);
  return last != nullptr && *last != '\0' ? last : natsStatus_GetText(s);
}

// One connection and its JetStream context, destroyed together.
struct Client {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  ~Client() {
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) natsConnection_Destroy(nc);
  }
};

absl::Status Connect(const Options& options, int64_t max_pending, absl::Duration timeout,
                     Client* client) {
  std::vector<std::string> urls = absl::StrSplit(options.servers, ',', absl::SkipEmpty());
  std::vector<const char*> ptrs;
  for (const std::string& u : urls) ptrs.push_back(u.c_str());
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetServers(opts, ptrs.data(), static_cast<int>(ptrs.size()));
  if (s == NATS_OK) s = natsConnection_Connect(&client->nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach NATS at ", options.servers, ": ", NatsText(s)));
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = Millis(absl::Seconds(10));
  jo.PublishAsync.MaxPending = max_pending;
  jo.PublishAsync.StallWait = Millis(timeout);
  s = natsConnection_JetStream(&client->js, client->nc, &jo);
  if (s != NATS_OK) return absl::UnavailableError(absl::StrCat("no JetStream: ", NatsText(s)));
  return absl::OkStatus();
}

absl::Status FreshStream(const Options& options, jsCtx* js) {
  jsErrCode code = static_cast<jsErrCode>(0);
  js_DeleteStream(js, kStream, nullptr, &code);  // from an earlier run; absent is fine
  const char* subjects[] = {kSubject};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = kStream;
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  config.Replicas = options.replicas;
  config.Duplicates = absl::ToInt64Nanoseconds(absl::Hours(24));
  natsStatus s = js_AddStream(nullptr, js, &config, nullptr, &code);
  if (s != NATS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot create stream ", kStream, ": ", NatsText(s), " (", code, ")"));
  }
  return absl::OkStatus();
}

// The consumer side: a durable push consumer feeding a Tally.
class Consumer {
 public:
  Consumer(Tally* tally, bool keep_latencies) : tally_(tally), keep_latencies_(keep_latencies) {}
  ~Consumer() {
    if (sub_ != nullptr) {
      natsSubscription_Unsubscribe(sub_);
      natsSubscription_Destroy(sub_);
    }
  }

  absl::Status Start(const Options& options, uint32_t max_in_flight, absl::Duration timeout) {
    if (absl::Status s = Connect(options, 0, timeout, &client_); !s.ok()) return s;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = kStream;
    so.ManualAck = true;
    so.Config.Durable = "bench";
    so.Config.AckPolicy = js_AckAll;
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.MaxAckPending = max_in_flight;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s =
        js_Subscribe(&sub_, client_.js, kSubject, &Consumer::OnMsg, this, nullptr, &so, &code);
    if (s != NATS_OK) {
      return absl::UnavailableError(
          absl::StrCat("cannot subscribe: ", NatsText(s), " (", code, ")"));
    }
    natsSubscription_SetPendingLimits(sub_, -1, -1);
    return absl::OkStatus();
  }

  uint64_t deliveries() const { return deliveries_.load(); }
  // Receive time - scheduled time of each event, in nanoseconds.
  std::vector<int64_t> TakeLatencies() {
    absl::MutexLock lock(&mu_);
    return std::move(latencies_ns_);
  }

 private:
  static void OnMsg(natsConnection* /*nc*/, natsSubscription* /*sub*/, natsMsg* msg, void* self) {
    static_cast<Consumer*>(self)->Handle(msg);
  }

  void Handle(natsMsg* msg) {
    const int64_t now = NowNanos();
    Event event;
    if (event.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg))) {
      deliveries_++;
      if (keep_latencies_) {
        absl::MutexLock lock(&mu_);
        latencies_ns_.push_back(now - ScheduledNanos(event));
      }
      const bool completed = tally_->Record(event);
      if (++unacked_ >= kAckEvery || completed) {
        natsMsg_Ack(msg, nullptr);
        unacked_ = 0;
      }
      if (completed) tally_->MarkComplete(NowNanos());
    }
    natsMsg_Destroy(msg);
  }

  Tally* const tally_;
  const bool keep_latencies_;
  Client client_;
  natsSubscription* sub_ = nullptr;
  int unacked_ = 0;  // the subscription's one delivery thread only
  std::atomic<uint64_t> deliveries_{0};
  absl::Mutex mu_;
  std::vector<int64_t> latencies_ns_ ABSL_GUARDED_BY(mu_);
};

// Publishes one serialized event asynchronously; false (and `error` set)
// on failure.
bool PublishAsync(jsCtx* js, const std::string& id, const std::string& payload,
                  std::string* error) {
  natsMsg* msg = nullptr;
  natsStatus s =
      natsMsg_Create(&msg, kSubject, nullptr, payload.data(), static_cast<int>(payload.size()));
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = id.c_str();
  if (s == NATS_OK) s = js_PublishMsgAsync(js, &msg, &po);
  natsMsg_Destroy(msg);  // null when the client took it
  if (s != NATS_OK) *error = absl::StrCat("publish ", id, ": ", NatsText(s));
  return s == NATS_OK;
}

// Waits until JetStream makes (and deletes) a stream of `replicas` copies:
// a fresh cluster has elected its meta leader and has enough peers.
absl::Status WaitReady(const Options& options, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::DeadlineExceededError("no attempt");
  while (absl::Now() < deadline) {
    Client client;
    last = Connect(options, 0, timeout, &client);
    if (last.ok()) last = FreshStream(options, client.js);
    if (last.ok()) {
      js_DeleteStream(client.js, kStream, nullptr, nullptr);
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("JetStream at ", options.servers, " not ready within ",
                   absl::FormatDuration(timeout), ": ", last.message()));
}

RunResult Run(const std::string& workload, int run, const Options& options,
              const BenchConfig& config) {
  RunResult r;
  r.workload = workload;
  r.run = run;
  const bool w3 = workload == "W3";
  r.events = w3 ? static_cast<uint64_t>(config.rate * absl::ToDoubleSeconds(config.duration))
                : config.events;
  EventShape shape;
  shape.id_prefix = absl::StrCat(workload, "-r", run, "-");
  shape.keys = config.keys;
  shape.payload_bytes = config.payload_bytes;
  r.event_bytes = MakeEvent(shape, 0, 0).ByteSizeLong();
  const absl::Time deadline = absl::Now() + config.timeout;

  Client publisher;
  const int64_t window = static_cast<int64_t>(config.batch_events) * config.in_flight_batches;
  absl::Status status = Connect(options, window, config.timeout, &publisher);
  if (status.ok()) status = FreshStream(options, publisher.js);
  Tally tally(shape.id_prefix, r.events);
  std::unique_ptr<Consumer> consumer;
  if (status.ok() && workload != "W1") {
    consumer = std::make_unique<Consumer>(&tally, w3);
    status = consumer->Start(options, config.consumer_max_in_flight, config.timeout);
  }
  if (!status.ok()) {
    r.error = std::string(status.message());
    return r;
  }

  // W1/W2 build their events before the clock starts, as broker_bench does.
  std::vector<std::pair<std::string, std::string>> prepared;  // id, payload
  if (!w3) {
    prepared.reserve(r.events);
    for (uint64_t i = 0; i < r.events; ++i) {
      Event event = MakeEvent(shape, i, 0);
      prepared.emplace_back(event.id(), event.SerializeAsString());
    }
  }
  std::string error;
  const int64_t start = NowNanos();
  if (!w3) {
    for (const auto& [id, payload] : prepared) {
      if (!PublishAsync(publisher.js, id, payload, &error)) break;
    }
  } else {
    const double ns_per_event = 1e9 / config.rate;
    uint64_t sent = 0;
    while (sent < r.events && error.empty() && absl::Now() < deadline) {
      const int64_t now = NowNanos();
      const uint64_t due = std::min<uint64_t>(
          r.events, static_cast<uint64_t>(static_cast<double>(now - start) / ns_per_event) + 1);
      r.max_send_lag_ms =
          std::max(r.max_send_lag_ms, static_cast<double>(now - start) / 1e6 -
                                          static_cast<double>(sent) * ns_per_event / 1e6);
      for (; sent < due && error.empty(); ++sent) {
        const Event event = MakeEvent(
            shape, sent, start + static_cast<int64_t>(static_cast<double>(sent) * ns_per_event));
        PublishAsync(publisher.js, event.id(), event.SerializeAsString(), &error);
      }
      const int64_t next = start + static_cast<int64_t>(static_cast<double>(sent) * ns_per_event);
      const int64_t wait = next - NowNanos();
      if (wait > 0) absl::SleepFor(absl::Nanoseconds(wait));
    }
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = std::max<int64_t>(1, Millis(deadline - absl::Now()));
  natsStatus s = error.empty() ? js_PublishAsyncComplete(publisher.js, &po) : NATS_ERR;
  const int64_t published = NowNanos();
  if (error.empty() && s != NATS_OK)
    error = absl::StrCat("waiting for publish acks: ", NatsText(s));
  r.published = error.empty() ? r.events : 0;
  if (consumer != nullptr && error.empty() && !tally.WaitUntilComplete(deadline)) {
    error =
        absl::StrCat("the consumer got ", tally.distinct(), " of ", r.events, " events in time");
  }
  const int64_t end = consumer != nullptr ? tally.complete_nanos() : published;
  r.seconds = static_cast<double>(end - start) / 1e9;
  r.events_per_second = r.seconds > 0 ? static_cast<double>(r.events) / r.seconds : 0;
  if (consumer != nullptr) {
    r.publish_events_per_second =
        static_cast<double>(r.events) / (static_cast<double>(published - start) / 1e9);
    r.received = tally.distinct();
    r.missing = r.events - std::min(r.events, r.received);
    r.duplicates = tally.duplicates();
    r.deliveries = consumer->deliveries();
  }
  if (w3) {
    std::vector<int64_t> latencies = consumer->TakeLatencies();
    std::sort(latencies.begin(), latencies.end());
    r.has_latency = true;
    r.p50_ms = static_cast<double>(Percentile(latencies, 0.50)) / 1e6;
    r.p99_ms = static_cast<double>(Percentile(latencies, 0.99)) / 1e6;
    r.p999_ms = static_cast<double>(Percentile(latencies, 0.999)) / 1e6;
    r.max_ms = latencies.empty() ? 0 : static_cast<double>(latencies.back()) / 1e6;
  }
  consumer.reset();
  r.error = error;
  r.ok = error.empty() && r.missing == 0;
  return r;
}

}  // namespace
}  // namespace relay::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "W1, W2-1c and W3 on NATS JetStream through its C client (bench/README.md)");
  absl::ParseCommandLine(argc, argv);
  relay::bench::Options options;
  options.servers = absl::GetFlag(FLAGS_nats);
  options.replicas = absl::GetFlag(FLAGS_replicas);
  relay::bench::BenchConfig config;
  config.events = absl::GetFlag(FLAGS_events);
  config.rate = absl::GetFlag(FLAGS_rate);
  config.duration = absl::GetFlag(FLAGS_duration);
  config.batch_events = absl::GetFlag(FLAGS_batch);
  config.in_flight_batches = absl::GetFlag(FLAGS_inflight);
  config.consumer_max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  config.payload_bytes = absl::GetFlag(FLAGS_payload_bytes);
  config.keys = absl::GetFlag(FLAGS_keys);
  config.timeout = absl::GetFlag(FLAGS_timeout);
  config.broker_binary = "(none: NATS JetStream directly)";
  const int runs = absl::GetFlag(FLAGS_runs);
  const bool json = absl::GetFlag(FLAGS_json);
  auto usage = [](const char* what) {
    std::fprintf(stderr, "nats_bench: %s\n", what);
    return 2;
  };
  if (options.replicas < 1 || options.replicas > 5) return usage("--replicas must be within 1..5");
  if (runs < 1 || runs > 100) return usage("--runs must be within 1..100");
  if (config.events < 1 || config.events > 100'000'000)
    return usage("--events must be within 1..1e8");
  if (config.rate <= 0 || config.rate > 1e7) return usage("--rate must be within (0, 1e7]");
  if (config.duration <= absl::ZeroDuration() || config.duration > absl::Hours(1)) {
    return usage("--duration must be within (0, 1h]");
  }
  if (config.batch_events < 1 || config.in_flight_batches < 1 || config.keys < 1 ||
      config.payload_bytes < 16) {
    return usage("--batch, --inflight and --keys must be positive and --payload_bytes at least 16");
  }
  if (config.timeout <= absl::ZeroDuration()) return usage("--timeout must be positive");
  if (absl::GetFlag(FLAGS_workload) == "ready") {
    absl::Status ready = relay::bench::WaitReady(options, config.timeout);
    if (!ready.ok()) std::fprintf(stderr, "nats_bench: %s\n", std::string(ready.message()).c_str());
    nats_Close();
    return ready.ok() ? 0 : 1;
  }
  std::vector<std::string> workloads;
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_workload), ',', absl::SkipEmpty())) {
    if (name == "all") {
      workloads.insert(workloads.end(), {"W1", "W2-1c", "W3"});
    } else if (name == "W1" || name == "W3" || name == "W2-1c") {
      workloads.emplace_back(name);
    } else if (name == "W2") {
      workloads.emplace_back("W2-1c");
    } else {
      return usage("--workload must list W1, W2, W2-1c, W3 or all");
    }
  }
  if (workloads.empty()) return usage("--workload is empty");

  std::vector<relay::bench::RunResult> results;
  bool all_ok = true;
  for (const std::string& w : workloads) {
    for (int run = 1; run <= runs; ++run) {
      results.push_back(relay::bench::Run(w, run, options, config));
      all_ok &= results.back().ok;
      std::fprintf(json ? stderr : stdout, "nats %s\n",
                   relay::bench::RunLine(results.back(), runs).c_str());
      std::fflush(json ? stderr : stdout);
    }
  }
  std::vector<relay::bench::Summary> summaries = relay::bench::Summarize(results);
  if (json) {
    std::fputs(relay::bench::ToJson(config, "off", results, summaries, {}).c_str(), stdout);
  } else {
    for (const auto& s : summaries) {
      std::printf("nats %s: median %.0f events/s", s.workload.c_str(), s.events_per_second);
      if (s.has_latency) std::printf(", p50 %.2f ms, p99 %.2f ms", s.p50_ms, s.p99_ms);
      std::printf("\n");
    }
  }
  nats_Close();
  return all_ok ? 0 : 1;
}
