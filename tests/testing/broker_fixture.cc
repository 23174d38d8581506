#include "tests/testing/broker_fixture.h"

#include "broker/storage/file_event_log.h"

namespace relay::testing {

absl::StatusOr<std::unique_ptr<broker::BrokerServer>> StartBroker(
    const std::string& data_dir, const BrokerTestOptions& options) {
  broker::BrokerServer::Options server_options;
  broker::StorageOptions& storage = server_options.storage;
  storage.backend = options.storage;
  storage.file.data_dir = data_dir;
  if (options.segment_bytes != 0) storage.file.segment_bytes = options.segment_bytes;
  storage.file.tail_cache_bytes = options.tail_cache_bytes;
  storage.jetstream.servers = options.nats_urls;
  if (options.jetstream_request_timeout > absl::ZeroDuration()) {
    storage.jetstream.request_timeout = options.jetstream_request_timeout;
  }
  server_options.listen_address = options.listen_address;
  server_options.groups_dir = data_dir + "/groups";
  if (options.groups_env != nullptr) server_options.env = options.groups_env;
  if (options.log_env != nullptr) storage.file.env = options.log_env;
  server_options.on_storage_failure = options.on_storage_failure;
  if (options.group_window_bytes != 0) {
    server_options.groups.max_window_bytes = options.group_window_bytes;
  }
  if (options.group_window_events != 0) {
    server_options.groups.scheduler.max_buffered = options.group_window_events;
  }
  server_options.groups.scheduler.max_deliveries = options.max_deliveries;
  server_options.groups.checkpoint_interval = absl::Milliseconds(50);
  server_options.keepalive = options.keepalive;
  server_options.max_receive_bytes = options.max_receive_bytes;
  server_options.limits.max_event_bytes = options.max_event_bytes;
  server_options.tls = options.tls;
  server_options.policy_file = options.policy_file;
  return broker::BrokerServer::Start(server_options);
}

absl::StatusOr<std::unique_ptr<TestBackend>> TestBackend::Start(broker::Storage storage) {
  std::unique_ptr<TestBackend> backend(new TestBackend(storage));
  if (storage == broker::Storage::kJetStream) {
    absl::StatusOr<std::unique_ptr<NatsServer>> nats = NatsServer::Start();
    if (!nats.ok()) return nats.status();
    backend->nats_ = std::move(*nats);
  }
  return backend;
}

std::vector<broker::Storage> TestBackend::All() {
  return {broker::Storage::kFile, broker::Storage::kJetStream};
}

void TestBackend::Apply(BrokerTestOptions* options) const {
  options->storage = storage_;
  options->nats_urls = nats_ != nullptr ? nats_->urls() : std::string();
}

std::shared_ptr<grpc::Channel> Channel(const std::string& target) {
  return relay::MakeChannel(target);
}

}  // namespace relay::testing
