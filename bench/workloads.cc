#include "bench/workloads.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "bench/bench_consumer.h"
#include "bench/bench_events.h"
#include "bench/bench_publisher.h"
#include "bench/bench_report.h"
#include "bench/broker_process.h"
#include "bench/sync_counter.h"
#include "common/grpc_channel.h"
#include "relay/broker/v1/broker.grpc.pb.h"

namespace relay::bench {
namespace {

constexpr char kTopic[] = "bench";
// After the last new event arrives, consumers stay a little longer so that
// late duplicates (redeliveries) are counted too.
constexpr absl::Duration kLinger = absl::Milliseconds(250);

// Relay's channel policy (keepalive, message sizes, reconnects), with its
// own TCP connection per client (as separate processes would have), and
// the run's transport: plaintext, or mutual TLS as relay-bench.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address, const BenchConfig& config) {
  grpc::ChannelArguments args = relay::MakeChannelArguments();
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxSendMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, relay::MakeChannelCredentials(config.client_tls), args);
}

double Seconds(int64_t nanos) { return static_cast<double>(nanos) / 1e9; }
double Millis(int64_t nanos) { return static_cast<double>(nanos) / 1e6; }

// Events 0..n-1 in batches, built before the clock starts so that the
// numbers measure the broker and the wire, not event construction.
std::vector<std::vector<Event>> BuildBatches(const EventShape& shape, uint64_t n, int batch) {
  std::vector<std::vector<Event>> batches;
  for (uint64_t seq = 0; seq < n;) {
    std::vector<Event>& b = batches.emplace_back();
    b.reserve(static_cast<size_t>(batch));
    for (int i = 0; i < batch && seq < n; ++i, ++seq) b.push_back(MakeEvent(shape, seq, 0));
  }
  return batches;
}

PublisherOptions PublisherFor(const BenchConfig& config, absl::Time deadline) {
  PublisherOptions o;
  o.client = config.client;
  o.topic = kTopic;
  o.max_in_flight_batches = config.in_flight_batches;
  o.max_batch_events = static_cast<size_t>(config.batch_events);
  o.deadline = deadline;
  return o;
}

// Sends every batch, then waits for every ack. Returns the first error.
absl::Status PublishAll(BenchPublisher& publisher, std::vector<std::vector<Event>> batches,
                        absl::Time deadline) {
  for (auto& b : batches) {
    if (absl::Status s = publisher.Send(std::move(b)); !s.ok()) return s;
  }
  return publisher.Drain(deadline);
}

struct Consumers {
  std::vector<std::unique_ptr<BenchConsumer>> members;
  void StopAll() {
    for (auto& m : members) m->Stop();
  }
};

absl::Status StartConsumers(const std::string& address, int count, bool record_latency,
                            const BenchConfig& config, absl::Time deadline, Tally* tally,
                            Consumers* out) {
  for (int i = 0; i < count; ++i) {
    BenchConsumer::Options o;
    o.topic = kTopic;
    o.group = "bench";
    o.member_name = absl::StrCat("bench-consumer-", i + 1);
    o.max_in_flight = config.consumer_max_in_flight;
    o.record_latency = record_latency;
    o.deadline = deadline;
    out->members.push_back(std::make_unique<BenchConsumer>(NewChannel(address, config), o, tally));
    absl::Status s =
        out->members.back()->Start(std::min(deadline, absl::Now() + absl::Seconds(10)));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// The group's broker-side counters (DescribeGroups): redeliveries and dead
// letters. Best effort: an error leaves them at 0 and is returned.
absl::Status FetchGroupStats(const std::string& address, const BenchConfig& config, RunResult& r) {
  auto stub = relay::broker::v1::Broker::NewStub(NewChannel(address, config));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  relay::broker::v1::DescribeGroupsRequest request;
  request.set_topic(kTopic);
  relay::broker::v1::DescribeGroupsResponse response;
  grpc::Status status = stub->DescribeGroups(&context, request, &response);
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("DescribeGroups: ", status.error_message()));
  }
  for (const auto& g : response.groups()) {
    r.redelivered += g.redelivered();
    r.dead_lettered += g.dead_lettered();
  }
  return absl::OkStatus();
}

// Waits for the tally (bounded), lingers for late duplicates, stops the
// consumers and fills the delivery counts of `r`.
absl::Status FinishConsuming(Tally& tally, Consumers& consumers, absl::Time deadline,
                             RunResult& r) {
  absl::Status status;
  if (!tally.WaitUntilComplete(deadline)) {
    status = absl::DeadlineExceededError(absl::StrCat(
        "only ", tally.distinct(), " of ", tally.expected(), " events received in time"));
    for (auto& m : consumers.members) {
      if (std::string e = m->error(); !e.empty()) {
        absl::StrAppend(&r.error, "consumer: ", e, "; ");
      }
    }
  } else {
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(kLinger));
  }
  consumers.StopAll();
  for (auto& m : consumers.members) {
    r.deliveries += m->received();
    r.delivery_messages += m->messages();
  }
  r.received = tally.distinct();
  r.missing = tally.expected() - tally.distinct();
  r.duplicates = tally.duplicates();
  if (tally.foreign() > 0 && status.ok()) {
    status =
        absl::InternalError(absl::StrCat(tally.foreign(), " deliveries with ids not published"));
  }
  return status;
}

// CPU seconds of the broker and of this process over a measured window.
class CpuMeter {
 public:
  explicit CpuMeter(const BrokerProcess* broker) : broker_(broker) {}
  void Start() {
    broker0_ = broker_->CpuSeconds();
    self0_ = SelfCpuSeconds();
  }
  void Stop(RunResult& r) const {
    r.broker_cpu_seconds = broker_->CpuSeconds() - broker0_;
    r.bench_cpu_seconds = SelfCpuSeconds() - self0_;
  }

 private:
  static double SelfCpuSeconds() {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  }
  const BrokerProcess* broker_;
  double broker0_ = 0, self0_ = 0;
};

absl::Status RunW1(const std::string& address, const BenchConfig& config, const EventShape& shape,
                   absl::Time deadline, CpuMeter& cpu, RunResult& r) {
  auto batches = BuildBatches(shape, config.events, config.batch_events);
  auto publisher = NewPublisher(NewChannel(address, config), PublisherFor(config, deadline));
  if (!publisher.ok()) return publisher.status();
  cpu.Start();
  const int64_t start = NowNanos();
  absl::Status s = PublishAll(**publisher, std::move(batches), deadline);
  cpu.Stop(r);
  r.published = (*publisher)->acked();
  r.publish_duplicates = (*publisher)->duplicates();
  r.missing = config.events - std::min(config.events, r.published);
  r.seconds = Seconds((*publisher)->last_ack_nanos() - start);
  r.events_per_second = r.published / std::max(r.seconds, 1e-9);
  r.publish_events_per_second = r.events_per_second;
  return s;
}

absl::Status RunW2(const std::string& address, int consumer_count, const BenchConfig& config,
                   const EventShape& shape, absl::Time deadline, CpuMeter& cpu, RunResult& r) {
  Tally tally(shape.id_prefix, config.events);
  Consumers consumers;
  if (absl::Status s =
          StartConsumers(address, consumer_count, false, config, deadline, &tally, &consumers);
      !s.ok()) {
    consumers.StopAll();
    return s;
  }
  auto batches = BuildBatches(shape, config.events, config.batch_events);
  auto publisher = NewPublisher(NewChannel(address, config), PublisherFor(config, deadline));
  if (!publisher.ok()) return publisher.status();
  cpu.Start();
  const int64_t start = NowNanos();
  absl::Status published = PublishAll(**publisher, std::move(batches), deadline);
  r.published = (*publisher)->acked();
  r.publish_duplicates = (*publisher)->duplicates();
  r.publish_events_per_second =
      r.published / std::max(Seconds((*publisher)->last_ack_nanos() - start), 1e-9);
  absl::Status consumed = published.ok() ? FinishConsuming(tally, consumers, deadline, r)
                                         : FinishConsuming(tally, consumers, absl::Now(), r);
  if (absl::Status g = FetchGroupStats(address, config, r); !g.ok() && consumed.ok()) consumed = g;
  cpu.Stop(r);
  if (tally.complete_nanos() > 0) {
    r.seconds = Seconds(tally.complete_nanos() - start);
    r.events_per_second = r.received / std::max(r.seconds, 1e-9);
  }
  return published.ok() ? consumed : published;
}

absl::Status RunW3(const std::string& address, const BenchConfig& config, const EventShape& shape,
                   absl::Time deadline, CpuMeter& cpu, RunResult& r) {
  const uint64_t total =
      static_cast<uint64_t>(std::llround(config.rate * absl::ToDoubleSeconds(config.duration)));
  r.events = total;
  Tally tally(shape.id_prefix, total);
  Consumers consumers;
  if (absl::Status s = StartConsumers(address, 1, true, config, deadline, &tally, &consumers);
      !s.ok()) {
    consumers.StopAll();
    return s;
  }
  PublisherOptions po = PublisherFor(config, deadline);
  // Small batches, many in flight: the window must never hold the schedule
  // back while fsyncs are in progress.
  po.max_in_flight_batches = std::max(po.max_in_flight_batches, 1024);
  auto publisher = NewPublisher(NewChannel(address, config), po);
  if (!publisher.ok()) return publisher.status();

  // Event i is due at start + i/rate (an absolute schedule: a late send
  // does not push the later ones back, it sends everything due at once).
  // Latency counts from the due time, so the sender's own lateness is part
  // of it: wake as close to it as the kernel can (Linux adds up to 50 us of
  // timer slack to every sleep otherwise). Restored after the run.
  const int previous_slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
  prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
  const int64_t start = NowNanos() + 20'000'000;
  cpu.Start();
  auto due = [&](uint64_t i) {
    return start + static_cast<int64_t>(static_cast<double>(i) * 1e9 / config.rate);
  };
  absl::Status sent;
  std::vector<int64_t> lags;  // how late each send started after its first event was due
  lags.reserve(total);
  int64_t max_send = 0;  // longest Send() call: the client's own blocking
  for (uint64_t i = 0; i < total && sent.ok();) {
    int64_t now = NowNanos();
    if (now < due(i)) {
      std::this_thread::sleep_until(
          std::chrono::steady_clock::time_point(std::chrono::nanoseconds(due(i))));
      now = NowNanos();
    }
    lags.push_back(now - due(i));
    std::vector<Event> batch;
    while (i < total && due(i) <= now && batch.size() < static_cast<size_t>(config.batch_events)) {
      batch.push_back(MakeEvent(shape, i, due(i)));
      ++i;
    }
    const int64_t send_start = NowNanos();
    sent = (*publisher)->Send(std::move(batch));
    max_send = std::max(max_send, NowNanos() - send_start);
    if (sent.ok() && absl::Now() > deadline)
      sent = absl::DeadlineExceededError("W3 ran out of time sending");
  }
  if (previous_slack > 0) prctl(PR_SET_TIMERSLACK, previous_slack, 0, 0, 0);
  std::sort(lags.begin(), lags.end());
  r.max_send_lag_ms = lags.empty() ? 0 : Millis(lags.back());
  r.send_lag_p50_ms = Millis(Percentile(lags, 0.50));
  r.max_send_call_ms = Millis(max_send);
  absl::Status published = sent.ok() ? (*publisher)->Drain(deadline) : sent;
  r.published = (*publisher)->acked();
  r.publish_duplicates = (*publisher)->duplicates();
  absl::Status consumed = published.ok() ? FinishConsuming(tally, consumers, deadline, r)
                                         : FinishConsuming(tally, consumers, absl::Now(), r);
  if (absl::Status g = FetchGroupStats(address, config, r); !g.ok() && consumed.ok()) consumed = g;
  cpu.Stop(r);
  if (tally.complete_nanos() > 0) {
    r.seconds = Seconds(tally.complete_nanos() - start);
    r.events_per_second = r.received / std::max(r.seconds, 1e-9);
  }
  std::vector<int64_t> part = consumers.members[0]->to_append();
  std::sort(part.begin(), part.end());
  r.to_append_p50_ms = Millis(Percentile(part, 0.50));
  r.to_append_p99_ms = Millis(Percentile(part, 0.99));
  part = consumers.members[0]->append_to_receive();
  std::sort(part.begin(), part.end());
  r.append_to_receive_p50_ms = Millis(Percentile(part, 0.50));
  r.append_to_receive_p99_ms = Millis(Percentile(part, 0.99));
  std::vector<int64_t> lat = consumers.members[0]->latencies();
  std::sort(lat.begin(), lat.end());
  r.has_latency = true;
  r.p50_ms = Millis(Percentile(lat, 0.50));
  r.p99_ms = Millis(Percentile(lat, 0.99));
  r.p999_ms = Millis(Percentile(lat, 0.999));
  r.max_ms = lat.empty() ? 0 : Millis(lat.back());
  return published.ok() ? consumed : published;
}

std::string W4Topic(int i) { return absl::StrCat(kTopic, "-", i); }

// Unary Publish calls in flight, answered on gRPC's threads. Shared with
// the callbacks, which may outlive a run that timed out.
struct PublishCalls {
  absl::Mutex mu;
  int64_t outstanding ABSL_GUARDED_BY(mu) = 0;
  uint64_t acked ABSL_GUARDED_BY(mu) = 0;
  std::string error ABSL_GUARDED_BY(mu);
};

// Publishes `event` to `topic` with one unary call (deadline `deadline`),
// counted in `calls`.
void PublishOne(relay::broker::v1::Broker::Stub* stub, const std::string& topic, Event event,
                absl::Time deadline, const std::shared_ptr<PublishCalls>& calls) {
  struct Call {
    grpc::ClientContext context;
    relay::broker::v1::PublishRequest request;
    relay::broker::v1::PublishResponse response;
  };
  auto* call = new Call;  // deleted by the callback
  call->context.set_deadline(absl::ToChronoTime(deadline));
  call->request.set_topic(topic);
  *call->request.add_events() = std::move(event);
  {
    absl::MutexLock lock(&calls->mu);
    ++calls->outstanding;
  }
  stub->async()->Publish(&call->context, &call->request, &call->response,
                         [call, calls](grpc::Status status) {
                           absl::MutexLock lock(&calls->mu);
                           --calls->outstanding;
                           if (status.ok()) {
                             ++calls->acked;
                           } else if (calls->error.empty()) {
                             calls->error = absl::StrCat("Publish: ", status.error_message());
                           }
                           delete call;
                         });
}

// Waits until no call is in flight, or `deadline`.
absl::Status WaitForCalls(PublishCalls& calls, absl::Time deadline) {
  absl::MutexLock lock(&calls.mu);
  auto done = [&calls]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(calls.mu) { return calls.outstanding == 0; };
  if (!calls.mu.AwaitWithDeadline(absl::Condition(&done), deadline)) {
    return absl::DeadlineExceededError(
        absl::StrCat(calls.outstanding, " publish calls unanswered in time"));
  }
  return calls.error.empty() ? absl::OkStatus() : absl::UnavailableError(calls.error);
}

// W4: `groups` topics, each consumed by its own group, published to at a low
// steady rate (config.w4_rate over all of them); measures the broker's CPU
// and fsync/fdatasync calls per second in the steady state (the topics and
// groups exist before the window opens).
absl::Status RunW4(const std::string& address, int groups, const BenchConfig& config,
                   const EventShape& shape, absl::Time deadline, pid_t broker_pid,
                   const std::string& perf_dir, CpuMeter& cpu, RunResult& r) {
  const uint64_t total =
      static_cast<uint64_t>(std::llround(config.w4_rate * absl::ToDoubleSeconds(config.duration)));
  const uint64_t n = static_cast<uint64_t>(groups);
  r.groups = groups;
  r.events = total + n;  // one per topic first, to create it
  Tally tally(shape.id_prefix, total + n);
  Consumers consumers;
  // The subscriptions share a few connections (one per 100), as many
  // services would.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < groups; ++i) {
    if (i % 100 == 0) channels.push_back(NewChannel(address, config));
    BenchConsumer::Options o;
    o.topic = W4Topic(i);
    o.group = "bench";
    o.member_name = absl::StrCat("bench-consumer-", i + 1);
    o.max_in_flight = config.consumer_max_in_flight;
    o.deadline = deadline;
    consumers.members.push_back(std::make_unique<BenchConsumer>(channels.back(), o, &tally));
    absl::Status s =
        consumers.members.back()->Start(std::min(deadline, absl::Now() + absl::Seconds(10)));
    if (!s.ok()) {
      consumers.StopAll();
      return s;
    }
  }
  auto stub = relay::broker::v1::Broker::NewStub(NewChannel(address, config));
  auto calls = std::make_shared<PublishCalls>();
  // Every topic exists (its directory, its first segment) before the window.
  for (uint64_t i = 0; i < n; ++i) {
    PublishOne(stub.get(), W4Topic(static_cast<int>(i)), MakeEvent(shape, total + i, 0), deadline,
               calls);
  }
  absl::Status published = WaitForCalls(*calls, deadline);

  SyncCounter syncs;
  absl::Status counting = published.ok() ? syncs.Start(broker_pid, perf_dir) : published;
  cpu.Start();
  const int64_t start = NowNanos();
  auto due = [&](uint64_t i) {
    return start + static_cast<int64_t>(static_cast<double>(i) * 1e9 / config.w4_rate);
  };
  for (uint64_t i = 0; i < total && published.ok(); ++i) {
    if (NowNanos() < due(i)) {
      std::this_thread::sleep_until(
          std::chrono::steady_clock::time_point(std::chrono::nanoseconds(due(i))));
    }
    PublishOne(stub.get(), W4Topic(static_cast<int>(i % n)), MakeEvent(shape, i, due(i)), deadline,
               calls);
    if (absl::Now() > deadline) published = absl::DeadlineExceededError("W4 ran out of time");
  }
  if (published.ok()) published = WaitForCalls(*calls, deadline);
  const int64_t end = NowNanos();
  cpu.Stop(r);
  r.seconds = Seconds(end - start);
  if (counting.ok()) {
    absl::StatusOr<SyncCounter::Counts> counts = syncs.Stop(absl::Seconds(10));
    if (counts.ok()) {
      r.has_syncs = true;
      r.fsyncs_per_second = counts->fsync / std::max(r.seconds, 1e-9);
      r.fdatasyncs_per_second = counts->fdatasync / std::max(r.seconds, 1e-9);
    } else {
      r.syncs_error = std::string(counts.status().message());
    }
  } else {
    r.syncs_error = std::string(counting.message());
  }
  {
    absl::MutexLock lock(&calls->mu);
    r.published = calls->acked;
  }
  r.events_per_second = (r.published - std::min(r.published, n)) / std::max(r.seconds, 1e-9);
  absl::Status consumed = published.ok() ? FinishConsuming(tally, consumers, deadline, r)
                                         : FinishConsuming(tally, consumers, absl::Now(), r);
  return published.ok() ? consumed : published;
}

}  // namespace

std::vector<std::string> ExpandWorkload(const std::string& name,
                                        const std::vector<int>& w4_groups) {
  if (name == "W4") {
    std::vector<std::string> out;
    for (int g : w4_groups) out.push_back(absl::StrCat("W4-", g, "g"));
    return out;
  }
  if (name == "W1") return {"W1"};
  if (name == "W2") return {"W2-1c", "W2-2c"};
  if (name == "W2-1c" || name == "W2-2c") return {name};
  if (name == "W3") return {"W3"};
  if (name == "all") return {"W1", "W2-1c", "W2-2c", "W3"};
  return {};
}

RunResult RunWorkload(const std::string& workload, int run, const BenchConfig& config) {
  RunResult r;
  r.workload = workload;
  r.run = run;
  r.tls = config.client_tls.enabled();
  r.events = config.events;
  const absl::Time deadline = absl::Now() + config.timeout;

  EventShape shape;
  shape.id_prefix = absl::StrCat(workload, "-r", run, "-");
  shape.keys = config.keys;
  shape.payload_bytes = config.payload_bytes;
  r.event_bytes = MakeEvent(shape, config.events, 0).ByteSizeLong();

  BrokerProcess::Options bo;
  bo.binary = config.broker_binary;
  bo.temp_root = config.temp_root;
  bo.fsync = config.fsync;
  bo.extra_args = config.broker_args;
  bo.extra_args.insert(bo.extra_args.end(), config.tls_broker_args.begin(),
                       config.tls_broker_args.end());
  bo.keep_dir = config.keep_data;
  auto broker = BrokerProcess::Start(bo);
  if (!broker.ok()) {
    r.missing = r.events;
    r.error = std::string(broker.status().message());
    return r;
  }
  const std::string& address = (*broker)->address();
  absl::Status s;
  CpuMeter cpu(broker->get());
  if (workload == "W1") {
    s = RunW1(address, config, shape, deadline, cpu, r);
  } else if (workload == "W2-1c" || workload == "W2-2c") {
    s = RunW2(address, workload == "W2-1c" ? 1 : 2, config, shape, deadline, cpu, r);
  } else if (workload == "W3") {
    s = RunW3(address, config, shape, deadline, cpu, r);
  } else if (int groups = 0; absl::StartsWith(workload, "W4-") && absl::EndsWith(workload, "g") &&
                             absl::SimpleAtoi(workload.substr(3, workload.size() - 4), &groups) &&
                             groups > 0) {
    s = RunW4(address, groups, config, shape, deadline, (*broker)->pid(), (*broker)->dir(), cpu, r);
  } else {
    s = absl::InvalidArgumentError(absl::StrCat("unknown workload ", workload));
  }
  if (!s.ok()) absl::StrAppend(&r.error, s.message());
  r.broker_peak_rss_mb = ProcessMemoryMb((*broker)->pid(), "VmHWM");
  r.broker_rss_after_mb = ProcessMemoryMb((*broker)->pid(), "VmRSS");
  if (absl::Status stopped = (*broker)->Stop(absl::Seconds(20)); !stopped.ok()) {
    absl::StrAppend(&r.error, r.error.empty() ? "" : "; ", "broker stop: ", stopped.message());
  }
  if (config.keep_data)
    std::fprintf(stderr, "%s%s run %d: broker directory kept: %s\n", workload.c_str(),
                 r.tls ? " mTLS" : "", run, (*broker)->dir().c_str());
  r.ok = r.error.empty() && r.missing == 0;
  if (r.error.empty() && r.missing > 0) r.error = absl::StrCat(r.missing, " events missing");
  return r;
}

}  // namespace relay::bench
