#include "common/process.h"

#include <grpc/support/log.h>

#include <csignal>
#include <cstdio>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/env_flags.h"
#include "common/metrics.h"
#include "common/metrics_server.h"
#include "common/signals.h"
#include "common/tls.h"

// Every binary's TLS (docs/SECURITY.md), defined here once; Process::Init
// reads them (and their RELAY_<SERVICE>_TLS_* environment equivalents).
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate this process presents, as server and as client, and its key unless "
          "--tls_key names it (empty: plaintext)");
ABSL_FLAG(std::string, tls_key, "",
          "PEM private key of --tls_cert (empty: --tls_cert's file holds it, as scripts/dev-pki's "
          "NAME.pem does; one file is renewed at once)");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA certificates: servers require client certificates signed by them (mutual "
          "TLS), clients verify servers with them");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port to serve Prometheus metrics on, at GET /metrics (port 0: any free one; "
          "empty: no metrics server)");

namespace relay {
namespace {

// gRPC's own diagnostics (gpr_log) would go to stderr in gRPC's format; they
// go through the one facade instead, so --log_format=json holds for every line.
void GrpcLogToRelay(gpr_log_func_args* args) {
  log::Level level = log::Level::kInfo;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG) level = log::Level::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) level = log::Level::kError;
  log::Write(level, absl::StrCat("grpc: ", args->message),
             {{"source", absl::StrCat(args->file, ":", args->line)}});
}

// A binary's own flags are the ones its main.cc defines (the libraries it
// links, gRPC's and Abseil's, define none we mean to show or to read from the
// environment).
bool IsOwnFlagFile(absl::string_view file) {
  return absl::EndsWith(file, "/main.cc") || absl::EndsWith(file, "common/process.cc");
}

}  // namespace

Process::Process(std::string name, std::string env_prefix, std::string description)
    : name_(std::move(name)),
      env_prefix_(std::move(env_prefix)),
      description_(std::move(description)) {}

Process::~Process() = default;

absl::Status Process::Init(int argc, char** argv) {
  BlockTerminationSignals();
  // Past a file size limit (ulimit -f) a write then fails with EFBIG, an
  // I/O error the stores handle, instead of the signal killing the process
  // with a core dump.
  std::signal(SIGXFSZ, SIG_IGN);
#ifdef NDEBUG
  // Debian's Abseil keeps absl::Mutex deadlock detection on: a lock-order
  // graph update on every lock, 7-10% of the services' CPU (saga_bench).
  // Debug builds, where the tests run, keep it: it has caught an inversion.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  // --help prints "<program>: " before this.
  absl::SetProgramUsageMessage(
      absl::StrCat(description_, "\nEvery flag --name can also be set as environment variable ",
                   env_prefix_, "NAME."));
  // Abseil's --help lists the flags of files named like the program
  // (relay-broker.cc, ...); ours live in each binary's main.cc.
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = &IsOwnFlagFile;
  usage.contains_helpshort_flags = &IsOwnFlagFile;
  absl::SetFlagsUsageConfig(usage);
  std::vector<std::string> own;
  for (const auto& [flag_name, flag] : absl::GetAllFlags()) {
    if (IsOwnFlagFile(flag->Filename())) own.push_back(std::string(flag_name));
  }
  if (absl::Status s = ApplyEnvToFlags(env_prefix_, own); !s.ok()) return s;
  absl::ParseCommandLine(argc, argv);
  log::Format format = log::Format::kText;
  if (absl::CommandLineFlag* flag = absl::FindCommandLineFlag("log_format"); flag != nullptr) {
    if (absl::Status s = log::ParseFormat(flag->CurrentValue(), &format); !s.ok()) return s;
  }
  log::Init(name_, format);
  gpr_set_log_function(&GrpcLogToRelay);
  const TlsFiles tls{absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                     absl::GetFlag(FLAGS_tls_ca)};
  absl::StatusOr<TlsIdentity> identity = CheckTlsFiles(tls);
  if (!identity.ok()) return identity.status();
  SetProcessTls(tls);
  if (tls.enabled()) {
    RELAY_LOG(Info, tls.mutual() ? "mutual TLS" : "TLS",
              {{"identity", identity->identity.empty()
                                ? std::string("(none)")
                                : absl::StrCat(kIdentityScheme, identity->identity)},
               {"valid_until",
                absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", identity->not_after, absl::UTCTimeZone())},
               {"cert", tls.cert},
               {"ca", tls.ca}});
  }
  metrics::RegisterProcessMetrics(metrics::Registry::Default(), name_);
  if (const std::string listen = absl::GetFlag(FLAGS_metrics_listen); !listen.empty()) {
    absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> server =
        metrics::MetricsServer::Start(listen, &metrics::Registry::Default());
    if (!server.ok()) return server.status();
    metrics_server_ = *std::move(server);
    RELAY_LOG(Info, "metrics served",
              {{"listen", listen},
               {"port", absl::StrCat(metrics_server_->port())},
               {"path", "/metrics"}});
  }
  return absl::OkStatus();
}

int Process::Fail(const absl::Status& status) const {
  std::fprintf(stderr, "%s: %s\n", name_.c_str(), std::string(status.message()).c_str());
  return 1;
}

int Process::ServeUntilSignal(std::initializer_list<log::Field> fields,
                              const std::function<void()>& shutdown) const {
  log::Write(log::Level::kInfo, "serving", fields);
  int sig = WaitForTerminationSignal();
  RELAY_LOG(Info, "shutting down", {{"signal", absl::StrCat(sig)}});
  shutdown();
  RELAY_LOG(Info, "stopped", {});
  return 0;
}

}  // namespace relay
