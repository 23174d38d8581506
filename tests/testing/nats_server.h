#ifndef RELAY_TESTS_TESTING_NATS_SERVER_H_
#define RELAY_TESTS_TESTING_NATS_SERVER_H_

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace relay::testing {

// Real `nats-server -js` processes for tests: one node, or an N-node
// cluster (each node its own client port, cluster port, store directory
// and --server_name, routes to the others, one cluster name), all on
// 127.0.0.1 in a fresh temp dir. Start() returns once JetStream answers on
// every node. Kill() SIGKILLs a node; Restart() starts it again on the same
// ports and store. Only the processes it started are signalled, by PID.
// Not thread-safe.
//
//   absl::StatusOr<std::unique_ptr<NatsServer>> nats = NatsServer::Start();
//   options.servers = (*nats)->urls();
class NatsServer {
 public:
  static constexpr const char* kBinary = "/usr/sbin/nats-server";

  // FAILED_PRECONDITION when the binary is missing, DEADLINE_EXCEEDED when
  // a node's JetStream does not answer within `timeout` (its log is named).
  // `config` is added to every node's configuration file (users and their
  // permissions, say: with authorization, give it a `no_auth_user` that may
  // do everything, which urls() and the helpers below connect as).
  static absl::StatusOr<std::unique_ptr<NatsServer>> Start(
      int nodes = 1, absl::Duration timeout = absl::Seconds(30), const std::string& config = "");

  ~NatsServer();  // SIGKILLs the nodes still running
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  // "nats://127.0.0.1:<port>" of one node.
  std::string url(int node) const;
  // Every node's URL, comma-separated.
  std::string urls() const;
  const std::string& log_path(int node) const { return nodes_[node].log; }
  bool running(int node) const { return nodes_[node].process->running(); }

  // The node leading `stream` (by its server name), asked of a running
  // node. NOT_FOUND when the stream has no leader right now.
  absl::StatusOr<int> StreamLeader(const std::string& stream) const;

  // SIGKILLs the node and reaps it.
  void Kill(int node);
  // SIGSTOPs / SIGCONTs the node: it keeps its sockets but answers nothing.
  // Pause returns once every thread of the node shows as stopped: kill()
  // returns before that, and a server still answering for a moment after
  // it made "silent server" tests flaky.
  void Pause(int node);
  void Resume(int node) { ::kill(nodes_[node].process->pid(), SIGCONT); }
  // Starts a killed node again (same ports, name and store) and waits until
  // its JetStream answers.
  absl::Status Restart(int node, absl::Duration timeout = absl::Seconds(30));

 private:
  struct Node {
    std::string name;
    int client_port = 0;
    int cluster_port = 0;
    std::string store_dir;
    std::string log;
    std::unique_ptr<Subprocess> process;
  };

  NatsServer() = default;
  std::vector<std::string> Argv(int node) const;
  absl::Status Launch(int node);
  absl::Status WaitReady(int node, absl::Duration timeout) const;

  TempDir dir_;
  std::vector<Node> nodes_;
};

// A key of a key-value bucket read and written with the plain NATS client,
// as another program (or another broker) would, on its own connection to
// `servers`. KvGet: NOT_FOUND when the key is missing; UNAVAILABLE when
// NATS or the bucket cannot be reached.
absl::StatusOr<std::string> KvGet(const std::string& servers, const std::string& bucket,
                                  const std::string& key);
absl::Status KvPut(const std::string& servers, const std::string& bucket, const std::string& key,
                   const std::string& bytes);

// A stream made with the plain NATS client, as an operator could make one
// before any broker does: file storage, one subject, no direct gets, a
// dedupe window of an hour, and `max_msg_size` bytes per message (headers
// included; -1: no limit). UNAVAILABLE when NATS does not make it.
struct StreamByHand {
  std::string name;
  std::string subject;
  std::string description;
  int32_t max_msg_size = -1;
};
absl::Status AddStream(const std::string& servers, const StreamByHand& stream);
// Deletes stream `name`, as an operator could. UNAVAILABLE when NATS does
// not.
absl::Status DeleteStream(const std::string& servers, const std::string& name);
// Points stream `name` at `subject` instead of its subjects, as an operator
// could. UNAVAILABLE when NATS does not.
absl::Status SetStreamSubject(const std::string& servers, const std::string& name,
                              const std::string& subject);
// Whether stream `name` allows direct gets. UNAVAILABLE when NATS does not
// answer.
absl::StatusOr<bool> StreamAllowsDirect(const std::string& servers, const std::string& name);
// Creates key-value bucket `bucket` with `replicas` copies as the plain
// client makes one (direct gets allowed). UNAVAILABLE when NATS does not.
absl::Status KvCreate(const std::string& servers, const std::string& bucket, int replicas);

}  // namespace relay::testing

#endif  // RELAY_TESTS_TESTING_NATS_SERVER_H_
