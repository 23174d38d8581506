#ifndef RELAY_TESTS_TESTING_BROKER_FIXTURE_H_
#define RELAY_TESTS_TESTING_BROKER_FIXTURE_H_

#include <grpcpp/channel.h>
#include <grpcpp/support/sync_stream.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/broker_server.h"
#include "broker/storage_backend.h"
#include "common/grpc_channel.h"
#include "tests/testing/nats_server.h"

namespace relay::broker {
// Names a backend in gtest's messages ("file", "jetstream").
inline void PrintTo(Storage storage, std::ostream* os) { *os << StorageName(storage); }
}  // namespace relay::broker

namespace relay::testing {

// Reads what is left of `stream`, discarding it, and returns how the
// server ended it: for tests of a stream the broker refuses.
template <typename Request, typename Response>
grpc::Status DrainAndFinish(grpc::ClientReaderWriter<Request, Response>& stream) {
  Response ignored;
  while (stream.Read(&ignored)) {
  }
  return stream.Finish();
}

struct BrokerTestOptions {
  std::string listen_address = "127.0.0.1:0";
  // The topics' backend. kJetStream needs `nats_urls` (see TestBackend).
  broker::Storage storage = broker::Storage::kFile;
  std::string nats_urls;
  // JetStream's request timeout (0: the log's default).
  absl::Duration jetstream_request_timeout = absl::ZeroDuration();
  uint32_t max_deliveries = 5;
  // Segment size of the log (0: the log's default).
  uint64_t segment_bytes = 0;
  // Bytes of events each group's window holds (0: the default).
  size_t group_window_bytes = 0;
  // Events each group's window holds (0: the default).
  size_t group_window_events = 0;
  // The file log's tail cache (FileEventLog::Options; 0 turns it off).
  size_t tail_cache_bytes = size_t{32} << 20;
  // The file system of the file storage's group checkpoints (null: the
  // default).
  broker::Env* groups_env = nullptr;
  // The file system of the file storage's topic logs (null: the default).
  broker::Env* log_env = nullptr;
  // BrokerServer::Options::on_storage_failure.
  std::function<void(const absl::Status&)> on_storage_failure;
  // The server's keepalive (tests of dead peers shorten it).
  Keepalive keepalive;
  // The largest request the server receives, and the largest event.
  int max_receive_bytes = kMaxMessageBytes;
  size_t max_event_bytes = 1 << 20;
  // The server's TLS and policy file (BrokerServer::Options).
  TlsFiles tls;
  std::string policy_file;
};

// An in-process broker on `data_dir` (file log, fsync per commit, group
// checkpoints in `data_dir`/groups; or JetStream at options.nats_urls, one
// replica, group checkpoints in its relay_groups bucket), serving on
// 127.0.0.1 with an ephemeral port unless told otherwise.
absl::StatusOr<std::unique_ptr<broker::BrokerServer>> StartBroker(
    const std::string& data_dir, const BrokerTestOptions& options = {});

// What a broker on a backend needs besides its data dir, for suites
// parameterized over the backends: nothing for kFile; a fresh single-node
// nats-server -js for kJetStream (its own ports and store, killed with this
// object, so every test starts with no stream). Keep it alive longer than
// the brokers that use it. Not thread-safe.
//
//   class Suite : public ::testing::TestWithParam<broker::Storage> {
//     void SetUp() override {
//       backend_ = *TestBackend::Start(GetParam());
//       backend_->Apply(&options_);
//     }
//   };
//   INSTANTIATE_TEST_SUITE_P(Backends, Suite, ::testing::ValuesIn(TestBackend::All()),
//                            TestBackend::ParamName);
class TestBackend {
 public:
  // FAILED_PRECONDITION / DEADLINE_EXCEEDED from NatsServer::Start.
  static absl::StatusOr<std::unique_ptr<TestBackend>> Start(broker::Storage storage);
  // Every backend, file first.
  static std::vector<broker::Storage> All();
  // "file" or "jetstream": a test-name suffix. Takes gtest's TestParamInfo.
  template <typename Info>
  static std::string ParamName(const Info& info) {
    return std::string(broker::StorageName(info.param));
  }

  broker::Storage storage() const { return storage_; }
  // Sets options->storage and nats_urls.
  void Apply(BrokerTestOptions* options) const;
  // Null for kFile.
  NatsServer* nats() { return nats_.get(); }

 private:
  explicit TestBackend(broker::Storage storage) : storage_(storage) {}
  broker::Storage storage_;
  std::unique_ptr<NatsServer> nats_;
};

// relay::MakeChannel(target): insecure, keepalive, large messages.
std::shared_ptr<grpc::Channel> Channel(const std::string& target);

}  // namespace relay::testing

#endif  // RELAY_TESTS_TESTING_BROKER_FIXTURE_H_
