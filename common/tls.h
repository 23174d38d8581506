#ifndef RELAY_COMMON_TLS_H_
#define RELAY_COMMON_TLS_H_

// Transport security of every Relay channel and server (docs/SECURITY.md):
// TLS from three PEM files, mutual when a CA is given, and the peer's Relay
// identity read from its certificate.
//
//   relay::TlsFiles tls{"pki/broker.crt", "pki/broker.key", "pki/ca.crt"};
//   if (absl::StatusOr<relay::TlsIdentity> id = relay::CheckTlsFiles(tls); !id.ok()) ...
//   relay::SetProcessTls(tls);   // MakeChannel and the servers use it from now on
//
// The files are watched: a renewed certificate and key (or CA) replace the
// old ones within kTlsReloadInterval, for new connections; connections
// already open keep the handshake they made, so no stream ends.

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace relay {

// The PEM files of one binary's TLS. All empty: plaintext.
struct TlsFiles {
  // This binary's certificate (chain, leaf first): presented as a server,
  // and as a client to servers that ask for one.
  std::string cert;
  // The private key of `cert`; empty when `cert`'s file holds the key too.
  // One file with both (scripts/dev-pki's NAME.pem) is what rotation
  // wants: it is replaced at once, so the watcher never reads a new key
  // beside the old certificate (two files renamed one after the other can
  // be read that way, and every handshake then fails until the next read).
  std::string key;
  // The CA certificates that peers' certificates must chain to. A server
  // with a CA requires and verifies client certificates (mutual TLS); a
  // client with one verifies servers with it (else with the system's CAs).
  std::string ca;

  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
  bool mutual() const { return !cert.empty() && !ca.empty(); }
  // `key`, or `cert` when the key is in the certificate's file.
  const std::string& key_file() const { return key.empty() ? cert : key; }
  bool operator==(const TlsFiles& o) const { return cert == o.cert && key == o.key && ca == o.ca; }
};

// How often the files are checked for changes (gRPC's file watcher).
inline constexpr absl::Duration kTlsReloadInterval = absl::Seconds(1);

// The URI scheme of a Relay identity in a certificate's subject alternative
// names: "relay://payment-service" is the identity "payment-service".
inline constexpr absl::string_view kIdentityScheme = "relay://";

// What CheckTlsFiles found in the certificate.
struct TlsIdentity {
  // From the first relay:// URI SAN; empty when the certificate has none.
  std::string identity;
  absl::Time not_after = absl::InfinitePast();
};

// Reads and checks the files now, so that a binary refuses to start with a
// clear error instead of failing every handshake: a key needs a
// certificate, and a certificate a key (its own file's, or `key`); each
// file exists and holds PEM of the right kind; the key is
// the certificate's; the certificate is valid now and chains to `ca` (when
// both are given). INVALID_ARGUMENT naming the flag's file and the problem.
// An empty `files` is OK (plaintext) with an empty identity.
absl::StatusOr<TlsIdentity> CheckTlsFiles(const TlsFiles& files);

// Credentials for a server or a client channel from `files`: insecure when
// !files.enabled(). One file watcher per distinct `files` in the process.
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsFiles& files);
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const TlsFiles& files);

// The process's TLS: what MakeChannel, ChannelSet and the servers use when
// not given files of their own. Set once at start-up (relay::Process does,
// from --tls_cert/--tls_key/--tls_ca); empty (plaintext) until then.
void SetProcessTls(const TlsFiles& files);
TlsFiles ProcessTls();

// The Relay identity of an authenticated peer: NAME of its certificate's
// first relay://NAME URI SAN; empty for a plaintext peer or a certificate
// without one.
std::string PeerIdentity(const grpc::AuthContext& context);

// Whether `address` ("host:port", "[::1]:port", "unix:...") can only be
// reached from this host: loopback addresses, localhost and unix sockets.
bool IsLoopbackAddress(absl::string_view address);

// Logs one warning (once per address and role) when `address` is not
// loopback and `files` is plaintext: events and orders would cross the
// network unencrypted and unauthenticated. `role`: "listening on" or
// "connecting to".
void WarnIfPlaintext(absl::string_view role, absl::string_view address, const TlsFiles& files);

}  // namespace relay

#endif  // RELAY_COMMON_TLS_H_
