#ifndef RELAY_BENCH_BENCH_TLS_H_
#define RELAY_BENCH_BENCH_TLS_H_

// Mutual TLS for the benches' runs (bench/README.md#tls): a development PKI
// from scripts/dev-pki, the flags that give a binary its certificate, and a
// policy file for the broker.
//
//   BenchPki::Options o;
//   o.script = "scripts/dev-pki";
//   auto pki = BenchPki::Make(o, {"broker", kBenchIdentity});
//   broker_args = (*pki)->ServerFlags("broker");
//   channel = relay::MakeChannel(address, {}, (*pki)->Files(kBenchIdentity));

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tls.h"

namespace relay::bench {

// The identity of the benches' own clients (publisher, consumers, the saga
// bench's order client): relay://relay-bench.
inline constexpr char kBenchIdentity[] = "relay-bench";

// What --tls asks for: plaintext only, mutual TLS only, or both, alternating
// run by run so that each TLS figure has a plaintext baseline measured
// beside it on the same machine at the same time.
enum class TlsMode { kOff, kOn, kBoth };

// "off", "on" or "both"; false for anything else.
bool ParseTlsMode(const std::string& text, TlsMode* mode);

// The transports a mode runs, in the order of a run whose number is `run`
// (1-based): with kBoth odd runs start with plaintext and even runs with
// TLS, so that a drift in the machine's load falls on both alike.
// Each entry: true = mutual TLS.
std::vector<bool> TransportsOfRun(TlsMode mode, int run);

// A directory of PEM files as scripts/dev-pki makes them: ca.crt and, per
// identity N, N.crt and N.key; made fresh or taken as given. Beside it a
// temporary directory of the bench's own (policy files, dev-pki's output),
// removed with the object, and so is a fresh PKI. Thread-safe once made.
class BenchPki {
 public:
  struct Options {
    std::string script;     // scripts/dev-pki
    std::string temp_root;  // where a fresh directory goes
    std::string dir;        // an existing PKI to use instead (--pki): nothing is made
    bool keep = false;      // keep a fresh directory
  };

  // Makes (or, with `options.dir`, checks) certificates for `identities`:
  // runs `script --dir DIR --name N ...` (at most 60 s) and then checks each
  // identity's files with relay::CheckTlsFiles, which must find the
  // identity in its certificate's relay:// SAN.
  static absl::StatusOr<std::unique_ptr<BenchPki>> Make(const Options& options,
                                                        const std::vector<std::string>& identities);
  ~BenchPki();

  BenchPki(const BenchPki&) = delete;
  BenchPki& operator=(const BenchPki&) = delete;

  const std::string& dir() const { return dir_; }

  // `identity`'s certificate and key, and the CA: mutual TLS.
  TlsFiles Files(const std::string& identity) const;
  // --tls_cert=… --tls_key=… --tls_ca=… for a Relay binary run as `identity`.
  std::vector<std::string> ServerFlags(const std::string& identity) const;

  // Writes `text` to <the bench's temporary directory>/<name> and returns
  // its path.
  absl::StatusOr<std::string> WriteFile(const std::string& name, const std::string& text) const;

 private:
  BenchPki(std::string dir, std::string work_dir, bool keep)
      : dir_(std::move(dir)), work_dir_(std::move(work_dir)), keep_(keep) {}

  const std::string dir_;       // the PEM files: work_dir_ when made here
  const std::string work_dir_;  // made here; removed by the destructor unless kept
  const bool keep_;
};

// The text of the file at `path` (INVALID_ARGUMENT naming it when it cannot
// be read).
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

}  // namespace relay::bench

#endif  // RELAY_BENCH_BENCH_TLS_H_
