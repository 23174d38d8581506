#include "broker/broker_lease.h"

#include <nats/nats.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "broker/storage/jetstream_connection.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/text.h"

namespace relay::broker {
namespace {

constexpr char kKey[] = "active";

std::string ValueOf(kvEntry* e) { return std::string(KvValue(e)); }

absl::Duration Since(std::chrono::steady_clock::time_point t) {
  return absl::FromChrono(std::chrono::steady_clock::now() - t);
}

// The holder's name and address in a lease value, for logs.
std::string Describe(const std::string& value) {
  return value.empty() ? "nobody (released)" : Excerpt(value, 160);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BrokerLease>> BrokerLease::Open(Options options) {
  if (absl::Status s = ValidateBucketOptions(options.servers, options.replicas, options.bucket);
      !s.ok()) {
    return s;
  }
  if (options.ttl < absl::Seconds(1) || options.ttl > absl::Seconds(60)) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease ttl must be in [1s, 60s], not ", absl::FormatDuration(options.ttl)));
  }
  if (options.holder.empty()) options.holder = NewId("broker");
  for (const std::string* field : {&options.holder, &options.address}) {
    if (absl::StrContains(*field, ' ') || field->size() > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("lease holder and address must have no space and at most 255 bytes, got ",
                       Excerpt(*field)));
    }
  }
  std::unique_ptr<BrokerLease> lease(new BrokerLease(std::move(options)));
  JetStreamConnectOptions connect;
  connect.servers = lease->options_.servers;
  connect.connect_timeout = lease->options_.connect_timeout;
  // A renewal must be answered, or given up, well within the ttl.
  connect.request_timeout = lease->call_timeout();
  connect.reconnect_wait = std::min(lease->heartbeat(), absl::Seconds(1));
  if (absl::Status s = ConnectJetStream(connect, &lease->nc_, &lease->js_); !s.ok()) return s;
  if (absl::Status s = lease->Bind(); !s.ok()) return s;
  return lease;
}

BrokerLease::~BrokerLease() {
  if (renewer_ != nullptr) renewer_->Stop();
  CloseJetStream(kv_, js_, nc_);
}

absl::Status BrokerLease::Bind() {
  return BindOrCreateBucket(js_, options_.bucket, "relay active broker lease", options_.replicas,
                            &kv_);
}

std::string BrokerLease::Value() const {
  return absl::StrCat(options_.holder, " ", options_.address);
}

absl::Status BrokerLease::Acquire(const absl::Notification* cancel) {
  while (true) {
    if (TryAcquire()) return absl::OkStatus();
    if (cancel->WaitForNotificationWithTimeout(heartbeat())) {
      return absl::CancelledError("stopped while waiting for the broker lease");
    }
  }
}

bool BrokerLease::TryAcquire() {
  const std::string value = Value();
  const SteadyTime sent = std::chrono::steady_clock::now();
  uint64_t revision = 0;
  kvEntry* raw = nullptr;
  natsStatus s = kvStore_Get(&raw, kv_, kKey);
  if (s == NATS_NOT_FOUND) {
    s = kvStore_Create(&revision, kv_, kKey, value.data(), static_cast<int>(value.size()));
  } else if (s != NATS_OK) {
    if (!read_failing_) {
      RELAY_LOG(Warn, "standby: cannot read the broker lease, retrying",
                {{"bucket", options_.bucket}, {"error", NatsErrorText(s)}});
    }
    read_failing_ = true;
    return false;
  } else {
    read_failing_ = false;
    KvEntry entry(raw);
    const uint64_t seen = kvEntry_Revision(entry.get());
    std::string current = ValueOf(entry.get());
    if (seen != seen_revision_) {
      seen_revision_ = seen;
      // After the read returned, so never before the write it saw: the
      // lapse is a whole ttl after that renewal, however slow the read.
      seen_since_ = std::chrono::steady_clock::now();
      if (current != seen_value_) {
        RELAY_LOG(Info, "standby: waiting for the broker lease",
                  {{"holder", Describe(current)},
                   {"ttl", absl::FormatDuration(options_.ttl)},
                   {"this_broker", options_.holder}});
        seen_value_ = std::move(current);
      }
    }
    const bool released = seen_value_.empty();
    const bool lapsed = Since(seen_since_) >= options_.ttl;
    if (!released && !lapsed) return false;
    s = kvStore_Update(&revision, kv_, kKey, value.data(), static_cast<int>(value.size()), seen);
  }
  if (s != NATS_OK) return false;  // another contender won, or no answer: read again
  RELAY_LOG(Info, "broker lease acquired: this broker is active",
            {{"holder", options_.holder},
             {"address", options_.address},
             {"previous", Describe(seen_value_)},
             {"revision", absl::StrCat(revision)}});
  absl::MutexLock lock(&mu_);
  held_ = true;
  revision_ = revision;
  last_renewal_sent_ = sent;
  return true;
}

void BrokerLease::KeepAlive(std::function<void(const std::string& why)> on_lost) {
  {
    absl::MutexLock lock(&mu_);
    on_lost_ = std::move(on_lost);
  }
  renewer_ = std::make_unique<Worker>("broker-lease", [this] { return Renew(); });
  renewer_->Start(heartbeat());
}

absl::Duration BrokerLease::Renew() {
  uint64_t expected = 0;
  SteadyTime last_good;
  {
    absl::MutexLock lock(&mu_);
    if (!held_) return absl::InfiniteDuration();
    expected = revision_;
    last_good = last_renewal_sent_;
  }
  // Past this without a good renewal the lease is given up. No call starts
  // after the limit and each waits at most call_timeout() (ttl / 8), and
  // no pass starts after it either (the wait below): on_lost runs by
  // 5/8 + 1/8 = 3/4 ttl after the last good renewal was sent.
  const absl::Duration limit = give_up_after();
  const std::string value = Value();
  const SteadyTime sent = std::chrono::steady_clock::now();
  uint64_t revision = 0;
  natsStatus s = NATS_ERR;
  std::string lost;
  std::string error = "none";
  if (Since(last_good) < limit) {
    s = kvStore_Update(&revision, kv_, kKey, value.data(), static_cast<int>(value.size()),
                       expected);
    if (s != NATS_OK) error = NatsErrorText(s);
  }
  // Refused, or unanswered: the key tells which, if there is time to ask.
  if (s != NATS_OK && Since(last_good) < limit) {
    kvEntry* raw = nullptr;
    natsStatus read = kvStore_Get(&raw, kv_, kKey);
    if (read == NATS_OK) {
      KvEntry entry(raw);
      const uint64_t current = kvEntry_Revision(entry.get());
      if (ValueOf(entry.get()) == value && current != expected) {
        s = NATS_OK;  // this renewal landed; only its answer was lost
        revision = current;
      } else if (current != expected) {
        lost = absl::StrCat("the lease was taken by ", Describe(ValueOf(entry.get())),
                            " (revision ", current, ", expected ", expected, ")");
      }
    } else if (read == NATS_NOT_FOUND) {
      lost = "the lease key was deleted";
    }
  }
  const absl::Duration unrenewed = Since(last_good);
  if (s != NATS_OK && lost.empty()) {
    if (unrenewed >= limit) {
      lost = absl::StrCat("no renewal succeeded for ", absl::FormatDuration(unrenewed),
                          " (last error: ", error, ")");
    } else {
      RELAY_LOG(Warn, "broker lease renewal failed, retrying",
                {{"error", error}, {"unrenewed", absl::FormatDuration(unrenewed)}});
    }
  }
  std::function<void(const std::string&)> on_lost;
  {
    absl::MutexLock lock(&mu_);
    if (s == NATS_OK) {
      revision_ = revision;
      last_renewal_sent_ = sent;
      return heartbeat();
    }
    // The next try starts by the limit at the latest, where it gives up.
    if (lost.empty()) return std::min(heartbeat() / 2, limit - unrenewed);
    held_ = false;
    on_lost = std::move(on_lost_);
  }
  RELAY_LOG(Error, "broker lease lost", {{"holder", options_.holder}, {"why", lost}});
  if (on_lost) on_lost(lost);
  return absl::InfiniteDuration();
}

void BrokerLease::Release() {
  if (renewer_ != nullptr) renewer_->Stop();
  uint64_t expected = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!held_) return;
    held_ = false;
    expected = revision_;
  }
  uint64_t revision = 0;
  natsStatus s = kvStore_Update(&revision, kv_, kKey, "", 0, expected);
  if (s == NATS_OK) {
    RELAY_LOG(Info, "broker lease released", {{"holder", options_.holder}});
  } else {
    RELAY_LOG(Warn, "cannot release the broker lease; a standby takes it when it lapses",
              {{"error", NatsErrorText(s)}, {"ttl", absl::FormatDuration(options_.ttl)}});
  }
}

}  // namespace relay::broker
