#ifndef RELAY_TESTS_TESTING_BROKER_FIXTURE_H_
#define RELAY_TESTS_TESTING_BROKER_FIXTURE_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "broker/broker_server.h"
#include "common/grpc_channel.h"

namespace relay::testing {

struct BrokerTestOptions {
  std::string listen_address = "127.0.0.1:0";
  uint32_t max_deliveries = 5;
  // Segment size of the log (0: the log's default).
  uint64_t segment_bytes = 0;
  // Bytes of events each group's window holds (0: the default).
  size_t group_window_bytes = 0;
  // The file system of the group checkpoints (null: the default).
  broker::Env* groups_env = nullptr;
  // The server's keepalive (tests of dead peers shorten it).
  Keepalive keepalive;
  // The largest request the server receives, and the largest event.
  int max_receive_bytes = kMaxMessageBytes;
  size_t max_event_bytes = 1 << 20;
};

// An in-process broker on `data_dir` (file log, fsync per commit), serving
// on 127.0.0.1 with an ephemeral port unless told otherwise.
absl::StatusOr<std::unique_ptr<broker::BrokerServer>> StartBroker(
    const std::string& data_dir, const BrokerTestOptions& options = {});

// relay::MakeChannel(target): insecure, keepalive, large messages.
std::shared_ptr<grpc::Channel> Channel(const std::string& target);

}  // namespace relay::testing

#endif  // RELAY_TESTS_TESTING_BROKER_FIXTURE_H_
