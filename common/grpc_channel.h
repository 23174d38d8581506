#ifndef RELAY_COMMON_GRPC_CHANNEL_H_
#define RELAY_COMMON_GRPC_CHANNEL_H_

// The connection settings every Relay channel and server share, keepalive
// first: without it a peer that hangs, is paused (SIGSTOP) or vanishes
// behind a dead network path keeps its streams -- a consumer its deliveries,
// a publisher its batches -- for as long as TCP takes to notice, which is
// minutes to hours. docs/ARCHITECTURE.md ("Dead peers: keepalive") gives the
// values and why.
//
//   auto channel = relay::MakeChannel("broker:7070");
//   grpc::ServerBuilder builder;
//   relay::ApplyServerConnectionArgs(builder);

#include <grpcpp/channel.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/tls.h"

namespace relay {

// The largest message a Relay channel or server receives (a publish batch,
// a delivery message, a Read answer). The Publisher splits batches to fit.
inline constexpr int kMaxMessageBytes = 64 << 20;

// HTTP/2 keepalive of one side of a connection.
struct Keepalive {
  // Ping the peer after this long (10 s); then again every `time`.
  absl::Duration time = absl::Seconds(10);
  // A ping not answered within this (5 s) closes the connection: its streams
  // end with UNAVAILABLE, so a dead or hung peer is noticed within
  // time + timeout (15 s).
  absl::Duration timeout = absl::Seconds(5);
  // Server only: the enforcement policy. A client pinging more often than
  // this (5 s, half the clients' `time`) is sent GOAWAY (too_many_pings).
  absl::Duration min_client_ping_interval = absl::Seconds(5);
};

// How long one connection attempt may take before gRPC abandons it.
inline constexpr absl::Duration kMinConnectTimeout = absl::Seconds(5);

// The arguments of a Relay client channel: keepalive (pings also while no
// call is open, unlimited pings without data), large messages allowed
// (64 MiB received), quick reconnects (a restarted peer is found again
// within about a second).
grpc::ChannelArguments MakeChannelArguments(const Keepalive& keepalive = {});

// The one channel per peer a binary uses: MakeChannelArguments(), with the
// process's TLS (common/tls.h; plaintext unless the binary was given
// --tls_* flags) or `tls`.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const Keepalive& keepalive = {},
                                           const TlsFiles& tls = ProcessTls());

// One peer reachable at one of several addresses, of which one serves at a
// time: the active relay-broker among standbys, which do not listen until
// they take over (docs/JETSTREAM.md#standby-brokers). Holds one channel per
// address; a client opens each stream or call on Pick(), and so finds the
// active broker by itself after a failover: the dead broker's channel
// fails, the new one's connects.
//
// With one address it is a plain channel. Thread-safe.
//
//   auto brokers = relay::ChannelSet::Parse("broker-a:7070,broker-b:7070");
//   stub = Broker::NewStub((*brokers)->Pick());
class ChannelSet {
 public:
  // The longest address of a target list.
  static constexpr size_t kMaxTargetBytes = 300;

  // `targets`: "host:port[,host:port...]" (whitespace around each entry is
  // dropped). INVALID_ARGUMENT, quoting at most 32 bytes, for an empty list,
  // an empty entry, or one over kMaxTargetBytes or with a space or control
  // character inside. Each channel as MakeChannel(entry, keepalive, tls).
  static absl::StatusOr<std::shared_ptr<ChannelSet>> Parse(const std::string& targets,
                                                           const Keepalive& keepalive = {},
                                                           const TlsFiles& tls = ProcessTls());
  // A set of one existing channel.
  explicit ChannelSet(std::shared_ptr<grpc::Channel> channel);

  // The channel for the next attempt: a connected (READY) one, the last
  // picked first; else the last picked unless its connection attempts fail
  // (TRANSIENT_FAILURE); else the next one that is not failing, else simply
  // the next. Asks every channel to connect, so that a broker which starts
  // listening is found by the following attempt.
  std::shared_ptr<grpc::Channel> Pick();

  // Waits until one channel is connected and returns it; after `timeout`,
  // returns Pick() (its calls then fail with the connection's error).
  std::shared_ptr<grpc::Channel> WaitForReady(absl::Duration timeout);

  size_t size() const { return channels_.size(); }
  // The addresses, comma-separated, as given.
  const std::string& targets() const { return targets_; }

 private:
  ChannelSet(std::vector<std::shared_ptr<grpc::Channel>> channels, std::string targets);

  const std::vector<std::shared_ptr<grpc::Channel>> channels_;
  const std::string targets_;
  absl::Mutex mu_;
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
};

// Sets the server half of the same policy on `builder`: keepalive pings to
// every client, and the enforcement that permits the clients' pings (also
// without calls). Does not touch ports or message sizes.
void ApplyServerConnectionArgs(grpc::ServerBuilder& builder, const Keepalive& keepalive = {});

}  // namespace relay

#endif  // RELAY_COMMON_GRPC_CHANNEL_H_
