#ifndef RELAY_BENCH_SAGA_BENCH_SYSTEM_H_
#define RELAY_BENCH_SAGA_BENCH_SYSTEM_H_

#include <grpcpp/channel.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/bench_tls.h"
#include "bench/broker_process.h"

namespace relay::bench {

// Context switches (voluntary and not) that the threads process `pid` has
// now have made so far, from /proc/<pid>/task/*/status; 0 when it cannot be
// read. Threads that already exited are not counted. `pid` 0 means this
// process.
uint64_t ProcessContextSwitches(pid_t pid);

// One service binary (order-, inventory- or payment-service) as a child
// process on 127.0.0.1 with a port the kernel picks. The services have no
// --port_file, so the port is read back from their "serving ... port=N" log
// line. stdout and stderr go to <dir>/<name>.log.
//
// Not thread-safe: one owner drives it.
class ServiceProcess {
 public:
  // Spawns `binary` with `args` (--listen is added) and waits up to
  // `timeout` for its "serving" line. Fails with the log's tail when it
  // exits first or does not come up in time.
  static absl::StatusOr<std::unique_ptr<ServiceProcess>> Start(const std::string& name,
                                                               const std::string& binary,
                                                               std::vector<std::string> args,
                                                               const std::string& dir,
                                                               absl::Duration timeout);
  ~ServiceProcess();  // SIGKILLs the child if still running

  ServiceProcess(const ServiceProcess&) = delete;
  ServiceProcess& operator=(const ServiceProcess&) = delete;

  const std::string& name() const { return name_; }
  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  double CpuSeconds() const { return exited_ ? 0 : ProcessCpuSeconds(pid_); }
  uint64_t ContextSwitches() const { return exited_ ? 0 : ProcessContextSwitches(pid_); }

  // Sends SIGTERM (when still running) and returns at once.
  void Terminate();
  // SIGKILL (when still running), then reaps the child.
  void Kill();
  // Terminate(), then up to `timeout` for the exit, then SIGKILL. An error
  // when it had to kill or the exit status was not 0. Idempotent.
  absl::Status Stop(absl::Duration timeout);
  std::string LogTail() const;

 private:
  ServiceProcess(std::string name, std::string log_path)
      : name_(std::move(name)), log_path_(std::move(log_path)) {}
  bool Reaped();

  const std::string name_;
  const std::string log_path_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int wait_status_ = 0;
  std::string address_;
};

// The whole system of one run: relay-broker and the three services on a
// fresh temporary directory, ready to take orders, with generous money and
// stock. Stop() (or the destructor) ends every process; the directory is
// removed unless `keep_dir`.
class SagaSystem {
 public:
  struct Options {
    std::string broker_binary, order_binary, inventory_binary, payment_binary;
    std::vector<std::string> broker_args, order_args, inventory_args, payment_args;
    std::string fsync = "batch";
    std::string temp_root = "/tmp";
    bool keep_dir = false;
    int customers = 16;                         // bench accounts made with Deposit
    int64_t deposit_minor = 1'000'000'000'000;  // per account
    int64_t stock = 1'000'000'000;              // on hand of every product
    // order-service --flow=sync, given the addresses of inventory and
    // payment (bench/flow_compare).
    bool order_sync = false;
    // Mutual TLS everywhere when set (it must outlive the system): each
    // binary runs with its identity's certificate (broker, order-service,
    // inventory-service, payment-service), the broker with --policy=`policy`
    // (when not empty), and the bench's own channels as relay-bench.
    const BenchPki* pki = nullptr;
    std::string policy;
    absl::Duration start_timeout = absl::Seconds(30);
  };

  static absl::StatusOr<std::unique_ptr<SagaSystem>> Start(const Options& options);
  ~SagaSystem();

  SagaSystem(const SagaSystem&) = delete;
  SagaSystem& operator=(const SagaSystem&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& broker_address() const { return broker_->address(); }
  const std::string& order_address() const { return order_->address(); }
  const std::string& inventory_address() const { return inventory_->address(); }
  const std::string& payment_address() const { return payment_->address(); }
  std::shared_ptr<grpc::Channel> order_channel() const { return order_channel_; }
  std::shared_ptr<grpc::Channel> broker_channel() const { return broker_channel_; }
  const std::vector<std::string>& customers() const { return customers_; }
  const std::vector<std::string>& skus() const { return skus_; }

  // CPU seconds so far of broker, order, inventory, payment (in that order).
  std::vector<double> CpuSeconds() const;
  // Context switches so far of the same four (ProcessContextSwitches).
  std::vector<double> ContextSwitches() const;
  // ProcessMemoryMb(`field`) of the same four.
  std::vector<double> MemoryMb(const std::string& field) const;

  // SIGKILLs payment-service (as a crash would) and reaps it.
  void KillPayment();
  // Starts payment-service again on its address and database, waiting up
  // to start_timeout for it to serve. REQUIRES: KillPayment() before.
  absl::Status RestartPayment();

  // SIGTERMs the services, then the broker, waiting up to `timeout` for each.
  // Returns the first error (killed, or a non-zero exit). Idempotent.
  absl::Status Stop(absl::Duration timeout);

 private:
  explicit SagaSystem(Options options) : options_(std::move(options)) {}
  absl::Status StartProcesses();
  // A channel of the bench's own to `address`: plaintext, or mutual TLS as
  // relay-bench.
  std::shared_ptr<grpc::Channel> BenchChannel(const std::string& address) const;
  // --tls_* flags of the binary running as `identity` (none in plaintext).
  std::vector<std::string> TlsFlags(const std::string& identity) const;
  // Waits for the seeded products and accounts, then sets stock and makes
  // the bench accounts.
  absl::Status Fund();

  const Options options_;
  std::string dir_;
  std::unique_ptr<BrokerProcess> broker_;
  std::unique_ptr<ServiceProcess> order_, inventory_, payment_;
  std::shared_ptr<grpc::Channel> order_channel_, broker_channel_;
  std::vector<std::string> customers_;
  std::vector<std::string> skus_;
  int payment_starts_ = 1;
  bool stopped_ = false;
};

}  // namespace relay::bench

#endif  // RELAY_BENCH_SAGA_BENCH_SYSTEM_H_
