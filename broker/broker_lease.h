#ifndef RELAY_BROKER_BROKER_LEASE_H_
#define RELAY_BROKER_BROKER_LEASE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/worker.h"

// The NATS C client's handles (nats.h), kept out of this header.
typedef struct __natsConnection natsConnection;
typedef struct __jsCtx jsCtx;
typedef struct __kvStore kvStore;

namespace relay::broker {

// Which of the relay-brokers that share one NATS cluster is the active one
// (docs/JETSTREAM.md#standby-brokers). Exactly one holds the lease; the
// others wait, without listening for clients, until it lapses.
//
// - The lease is the key `active` of the key-value bucket `relay_lease`
//   (Options::bucket; history 1, `replicas` copies, created when missing).
//   Its value is "<holder> <address>" (for operators and logs); an empty
//   value is a released lease.
// - The holder renews it every heartbeat (ttl / 4) by a compare-and-set
//   write on the revision it last wrote: every renewal is a new revision.
// - A contender reads the key every heartbeat. It takes the lease, by a
//   compare-and-set write on the revision it read, when the key is missing
//   or released, or when it has seen the same revision for a whole `ttl` on
//   its own monotonic clock (no clocks are compared between machines). Of
//   several contenders, one write wins.
// - The holder gives the lease up (on_lost) when a renewal is refused
//   (another broker took it) or when none has succeeded for 5/8 ttl
//   counted from the send of the last good one. No call starts after that
//   limit and each waits at most ttl / 8, so on_lost runs by 3/4 ttl,
//   while a contender can take the lease only a whole ttl after that
//   renewal was written: the two are never active at once unless a
//   process is paused (SIGSTOP, a stalled VM) --
//   and a paused holder, once resumed, still cannot advance a group: the
//   group checkpoints' own compare-and-set refuses it
//   (JetStreamGroupStore).
//
// Thread-safe.
//
//   BrokerLease::Options o;
//   o.servers = "nats://n1:4222,nats://n2:4222,nats://n3:4222";
//   o.replicas = 3;
//   o.address = "broker-a:7070";
//   auto lease = BrokerLease::Open(o);
//   if (!(*lease)->Acquire(&terminate).ok()) return 0;   // asked to stop
//   (*lease)->KeepAlive([](const std::string& why) { ...exit... });
//   ... serve ...
//   (*lease)->Release();
class BrokerLease {
 public:
  struct Options {
    // Comma-separated NATS URLs. Required.
    std::string servers;
    // Copies of the bucket when this broker creates it, in [1, 5].
    int replicas = 1;
    // The bucket's name ([A-Za-z0-9_-]). Tests use their own.
    std::string bucket = "relay_lease";
    // This broker's name in the lease (no space). Empty: a new
    // "broker-<random>".
    std::string holder;
    // Where clients reach this broker, shown to operators (no space).
    std::string address;
    // How long an unrenewed lease stays with its holder, in [1 s, 60 s].
    // The failover time after a holder dies is about ttl + ttl / 4.
    absl::Duration ttl = absl::Seconds(2);
    absl::Duration connect_timeout = absl::Seconds(5);
  };

  // Connects (its own connection), then binds to the bucket or creates it.
  // INVALID_ARGUMENT for bad options; UNAVAILABLE when NATS or JetStream
  // does not answer, or the bucket can be neither found nor created.
  static absl::StatusOr<std::unique_ptr<BrokerLease>> Open(Options options);

  BrokerLease(const BrokerLease&) = delete;
  BrokerLease& operator=(const BrokerLease&) = delete;
  // Stops renewing, without releasing; closes the connection.
  ~BrokerLease();

  // Blocks until this broker holds the lease: OK; or until `cancel` is
  // notified: CANCELLED. Logs who holds it while waiting (once per holder).
  absl::Status Acquire(const absl::Notification* cancel);

  // After Acquire(): renews the lease every heartbeat on its own thread,
  // and calls `on_lost` once, from that thread, with the reason, when the
  // lease is lost. Renewal stops then.
  void KeepAlive(std::function<void(const std::string& why)> on_lost);

  // Stops renewing and hands the lease back, so that a contender takes it
  // at its next read instead of after a ttl. Idempotent; a no-op when not
  // held.
  void Release();

  const std::string& holder() const { return options_.holder; }
  absl::Duration heartbeat() const { return options_.ttl / 4; }
  // The holder gives the lease up once no renewal sent this long ago or
  // later has succeeded.
  absl::Duration give_up_after() const { return options_.ttl * 5 / 8; }
  // The longest any one key-value call waits.
  absl::Duration call_timeout() const { return options_.ttl / 8; }

 private:
  explicit BrokerLease(Options options) : options_(std::move(options)) {}
  absl::Status Bind();
  // One contender's read and, when due, attempt. True when it now holds
  // the lease.
  bool TryAcquire();
  // One renewal; returns the wait before the next.
  absl::Duration Renew();
  std::string Value() const;

  const Options options_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  kvStore* kv_ = nullptr;

  using SteadyTime = std::chrono::steady_clock::time_point;

  // Contender state (Acquire()'s thread only).
  uint64_t seen_revision_ = 0;
  SteadyTime seen_since_;
  std::string seen_value_;
  bool read_failing_ = false;  // the last read failed (logged once per outage)

  mutable absl::Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;  // the revision last written
  SteadyTime last_renewal_sent_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&)> on_lost_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Worker> renewer_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_BROKER_LEASE_H_
