#ifndef RELAY_TESTS_TESTING_DEV_PKI_H_
#define RELAY_TESTS_TESTING_DEV_PKI_H_

// Certificates for the TLS tests, made by the script users run
// (scripts/dev-pki), so the tests check what compose uses.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/tls.h"

namespace relay::testing {

// Runs scripts/dev-pki --dir `dir` with `args` (e.g. {"--name", "relayctl",
// "--renew"}). INTERNAL with the script's output when it fails.
absl::Status RunDevPki(const std::string& dir, const std::vector<std::string>& args = {});

// The files of identity `name` in `dir` as the binaries take them: name.pem
// (key and certificate) and ca.crt.
TlsFiles PkiFiles(const std::string& dir, const std::string& name);

// The PEM of `path` (empty when unreadable).
std::string ReadFile(const std::string& path);

}  // namespace relay::testing

#endif  // RELAY_TESTS_TESTING_DEV_PKI_H_
