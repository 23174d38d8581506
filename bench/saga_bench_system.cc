#include "bench/saga_bench_system.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/spawn.h"
#include "common/grpc_channel.h"
#include "common/grpc_server.h"
#include "relay/inventory/v1/inventory.grpc.pb.h"
#include "relay/payment/v1/payment.grpc.pb.h"

namespace relay::bench {
namespace {

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

// The port of the first "serving ... port=N" line of `log`, or 0.
int ServingPort(const std::string& log) {
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (line.find(" serving") == absl::string_view::npos) continue;
    size_t at = line.find(" port=");
    if (at == absl::string_view::npos) continue;
    absl::string_view rest = line.substr(at + 6);
    rest = rest.substr(0, rest.find(' '));
    int port = 0;
    if (absl::SimpleAtoi(rest, &port) && port > 0) return port;
  }
  return 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

template <typename Fn>
grpc::Status Call(Fn fn, absl::Duration timeout = absl::Seconds(5)) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  return fn(&ctx);
}

}  // namespace

uint64_t ProcessContextSwitches(pid_t pid) {
  const std::string tasks =
      pid == 0 ? std::string("/proc/self/task") : absl::StrCat("/proc/", pid, "/task");
  std::error_code ec;
  uint64_t total = 0;
  for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
    std::ifstream in(task.path() / "status");
    std::string line;
    while (std::getline(in, line)) {
      // "voluntary_ctxt_switches:\t12" and "nonvoluntary_ctxt_switches:\t3"
      if (line.find("ctxt_switches:") == std::string::npos) continue;
      uint64_t n = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(line.find(':') + 1)), &n)) {
        total += n;
      }
    }
  }
  return total;
}

// ---------------------------------------------------------------------------
// ServiceProcess

absl::StatusOr<std::unique_ptr<ServiceProcess>> ServiceProcess::Start(const std::string& name,
                                                                      const std::string& binary,
                                                                      std::vector<std::string> args,
                                                                      const std::string& dir,
                                                                      absl::Duration timeout) {
  if (binary.empty() || access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(name, " binary '", binary, "' is not executable"));
  }
  std::unique_ptr<ServiceProcess> p(new ServiceProcess(name, absl::StrCat(dir, "/", name, ".log")));
  args.insert(args.begin(), {binary, "--listen=127.0.0.1:0"});
  if (int err = SpawnWithLog(args, p->log_path_, /*search_path=*/false, &p->pid_); err != 0) {
    return absl::InternalError(
        absl::StrCat("spawning ", absl::StrJoin(args, " "), ": ", std::strerror(err)));
  }

  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (int port = ServingPort(ReadFile(p->log_path_)); port > 0) {
      p->address_ = absl::StrCat("127.0.0.1:", port);
      return p;
    }
    if (p->Reaped()) {
      return absl::InternalError(absl::StrCat(name, " exited (",
                                              DescribeWaitStatus(p->wait_status_),
                                              ") before serving; log:\n", p->LogTail()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(name, " logged no 'serving' line within ",
                                                      absl::FormatDuration(timeout), "; log:\n",
                                                      p->LogTail()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

ServiceProcess::~ServiceProcess() {
  if (pid_ > 0 && !exited_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &wait_status_, 0);
    exited_ = true;
  }
}

bool ServiceProcess::Reaped() {
  if (pid_ <= 0 || exited_) return true;
  if (waitpid(pid_, &wait_status_, WNOHANG) == pid_) exited_ = true;
  return exited_;
}

void ServiceProcess::Terminate() {
  if (!Reaped()) kill(pid_, SIGTERM);
}

void ServiceProcess::Kill() {
  if (Reaped()) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, &wait_status_, 0);
  exited_ = true;
}

absl::Status ServiceProcess::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return absl::OkStatus();
  if (!Reaped()) {
    kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + timeout;
    while (!Reaped() && absl::Now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &wait_status_, 0);
      exited_ = true;
      return absl::DeadlineExceededError(absl::StrCat(
          name_, " did not exit within ", absl::FormatDuration(timeout), " of SIGTERM; killed"));
    }
  }
  if (!WIFEXITED(wait_status_) || WEXITSTATUS(wait_status_) != 0) {
    return absl::InternalError(absl::StrCat(name_, " ended with ", DescribeWaitStatus(wait_status_),
                                            "; log:\n", LogTail()));
  }
  return absl::OkStatus();
}

std::string ServiceProcess::LogTail() const {
  std::string text = ReadFile(log_path_);
  constexpr size_t kTail = 2000;
  return text.size() > kTail ? text.substr(text.size() - kTail) : text;
}

// ---------------------------------------------------------------------------
// SagaSystem

absl::StatusOr<std::unique_ptr<SagaSystem>> SagaSystem::Start(const Options& options) {
  std::string tmpl = absl::StrCat(options.temp_root, "/relay-saga-bench.XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp in ", options.temp_root, ": ", std::strerror(errno)));
  }
  std::unique_ptr<SagaSystem> system(new SagaSystem(options));
  system->dir_ = tmpl;
  if (absl::Status s = system->StartProcesses(); !s.ok()) return s;  // ~SagaSystem kills
  if (absl::Status s = system->Fund(); !s.ok()) return s;
  return system;
}

SagaSystem::~SagaSystem() {
  Stop(absl::Seconds(2)).IgnoreError();  // already stopped normally; this is the error path
  broker_.reset();
  if (!options_.keep_dir && !dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::shared_ptr<grpc::Channel> SagaSystem::BenchChannel(const std::string& address) const {
  return MakeChannel(address, {},
                     options_.pki == nullptr ? TlsFiles{} : options_.pki->Files(kBenchIdentity));
}

std::vector<std::string> SagaSystem::TlsFlags(const std::string& identity) const {
  if (options_.pki == nullptr) return {};
  return options_.pki->ServerFlags(identity);
}

absl::Status SagaSystem::StartProcesses() {
  BrokerProcess::Options b;
  b.binary = options_.broker_binary;
  b.temp_root = dir_;
  b.fsync = options_.fsync;
  b.extra_args = options_.broker_args;
  for (std::string& f : TlsFlags("broker")) b.extra_args.push_back(std::move(f));
  if (options_.pki != nullptr && !options_.policy.empty()) {
    b.extra_args.push_back(absl::StrCat("--policy=", options_.policy));
  }
  b.start_timeout = options_.start_timeout;
  b.keep_dir = options_.keep_dir;
  absl::StatusOr<std::unique_ptr<BrokerProcess>> broker = BrokerProcess::Start(b);
  if (!broker.ok()) return broker.status();
  broker_ = std::move(*broker);
  broker_channel_ = BenchChannel(broker_->address());

  auto start = [&](const std::string& name, const std::string& binary, const std::string& db,
                   const std::vector<std::string>& extra)
      -> absl::StatusOr<std::unique_ptr<ServiceProcess>> {
    std::vector<std::string> args = {absl::StrCat("--broker=", broker_->address()),
                                     absl::StrCat("--db=", dir_, "/", name, "/", db)};
    for (std::string& f : TlsFlags(absl::StrCat(name, "-service"))) args.push_back(std::move(f));
    args.insert(args.end(), extra.begin(), extra.end());
    return ServiceProcess::Start(name, binary, std::move(args), dir_, options_.start_timeout);
  };
  // Inventory first: it seeds the catalog that order-service replays.
  absl::StatusOr<std::unique_ptr<ServiceProcess>> p =
      start("inventory", options_.inventory_binary, "inventory.db", options_.inventory_args);
  if (!p.ok()) return p.status();
  inventory_ = std::move(*p);
  p = start("payment", options_.payment_binary, "payment.db", options_.payment_args);
  if (!p.ok()) return p.status();
  payment_ = std::move(*p);
  std::vector<std::string> order_args = options_.order_args;
  if (options_.order_sync) {
    order_args.insert(order_args.begin(),
                      {"--flow=sync", absl::StrCat("--inventory=", inventory_->address()),
                       absl::StrCat("--payment=", payment_->address())});
  }
  p = start("order", options_.order_binary, "orders.db", order_args);
  if (!p.ok()) return p.status();
  order_ = std::move(*p);
  order_channel_ = BenchChannel(order_->address());
  return absl::OkStatus();
}

absl::Status SagaSystem::Fund() {
  auto inventory = inventory::v1::InventoryService::NewStub(BenchChannel(inventory_->address()));
  auto payments = payment::v1::PaymentService::NewStub(BenchChannel(payment_->address()));
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  inventory::v1::ListProductsResponse products;
  grpc::Status last;
  while (true) {
    products.Clear();
    last = Call([&](grpc::ClientContext* c) { return inventory->ListProducts(c, {}, &products); });
    if (last.ok() && products.products_size() > 0) break;
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("inventory-service listed no products in time: ", last.error_message()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (const auto& product : products.products()) {
    inventory::v1::SetStockRequest set;
    set.set_sku(product.sku());
    set.set_on_hand(options_.stock);
    inventory::v1::Product out;
    grpc::Status s =
        Call([&](grpc::ClientContext* c) { return inventory->SetStock(c, set, &out); });
    if (!s.ok()) {
      return absl::InternalError(absl::StrCat("SetStock ", product.sku(), ": ", s.error_message()));
    }
    skus_.push_back(product.sku());
  }
  for (int i = 0; i < options_.customers; ++i) {
    payment::v1::DepositRequest dep;
    dep.set_customer_id(absl::StrFormat("c-saga-bench-%03d", i));
    dep.set_name(absl::StrFormat("Saga bench %d", i));
    dep.mutable_amount()->set_amount_minor(options_.deposit_minor);
    dep.mutable_amount()->set_currency("USD");
    payment::v1::Account out;
    grpc::Status s = Call([&](grpc::ClientContext* c) { return payments->Deposit(c, dep, &out); });
    if (!s.ok()) {
      return absl::InternalError(
          absl::StrCat("Deposit ", dep.customer_id(), ": ", s.error_message()));
    }
    customers_.push_back(dep.customer_id());
  }
  return absl::OkStatus();
}

void SagaSystem::KillPayment() {
  if (payment_ != nullptr) payment_->Kill();
}

absl::Status SagaSystem::RestartPayment() {
  const std::string address = payment_->address();
  std::vector<std::string> args = {absl::StrCat("--broker=", broker_->address()),
                                   absl::StrCat("--db=", dir_, "/payment/payment.db"),
                                   // After the --listen=...:0 Start() adds: the last one counts.
                                   absl::StrCat("--listen=", address)};
  for (std::string& f : TlsFlags("payment-service")) args.push_back(std::move(f));
  args.insert(args.end(), options_.payment_args.begin(), options_.payment_args.end());
  ++payment_starts_;
  absl::StatusOr<std::unique_ptr<ServiceProcess>> p =
      ServiceProcess::Start(absl::StrCat("payment-", payment_starts_), options_.payment_binary,
                            std::move(args), dir_, options_.start_timeout);
  if (!p.ok()) return p.status();
  payment_ = std::move(*p);
  return absl::OkStatus();
}

std::vector<double> SagaSystem::CpuSeconds() const {
  return {broker_ ? broker_->CpuSeconds() : 0, order_ ? order_->CpuSeconds() : 0,
          inventory_ ? inventory_->CpuSeconds() : 0, payment_ ? payment_->CpuSeconds() : 0};
}

std::vector<double> SagaSystem::MemoryMb(const std::string& field) const {
  auto of = [&field](const std::unique_ptr<ServiceProcess>& process) {
    return process ? ProcessMemoryMb(process->pid(), field) : 0.0;
  };
  return {broker_ ? ProcessMemoryMb(broker_->pid(), field) : 0.0, of(order_), of(inventory_),
          of(payment_)};
}

std::vector<double> SagaSystem::ContextSwitches() const {
  auto of = [](const auto& process) {
    return process ? static_cast<double>(process->ContextSwitches()) : 0.0;
  };
  // BrokerProcess is broker_bench's too: its pid, read here.
  return {broker_ ? static_cast<double>(ProcessContextSwitches(broker_->pid())) : 0.0, of(order_),
          of(inventory_), of(payment_)};
}

absl::Status SagaSystem::Stop(absl::Duration timeout) {
  if (stopped_) return absl::OkStatus();
  stopped_ = true;
  absl::Status first;
  // Services first (all at once: each drains its outbox for a few seconds),
  // so that they do not log broker outages while draining.
  const std::vector<ServiceProcess*> services = {order_.get(), inventory_.get(), payment_.get()};
  for (ServiceProcess* p : services) {
    if (p != nullptr) p->Terminate();
  }
  for (ServiceProcess* p : services) {
    if (p == nullptr) continue;
    absl::Status s = p->Stop(timeout);
    if (!s.ok() && first.ok()) first = s;
  }
  if (broker_) {
    absl::Status s = broker_->Stop(timeout);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

}  // namespace relay::bench
