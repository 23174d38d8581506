#include "common/tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"
#include "common/text.h"

namespace relay {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
struct StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

// The bytes of `path`, or INVALID_ARGUMENT naming `what` and the path.
absl::StatusOr<std::string> ReadPem(absl::string_view what, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", Excerpt(path, 200), ": cannot read the file"));
  }
  std::ostringstream data;
  data << in.rdbuf();
  if (data.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", Excerpt(path, 200), ": empty file"));
  }
  return data.str();
}

// Every certificate in the PEM `data` (none: an error naming `what`).
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(absl::string_view what,
                                                       const std::string& path,
                                                       const std::string& data) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  std::vector<X509Ptr> certs;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(x);
  ERR_clear_error();  // the end of the data reads as an error
  if (certs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", Excerpt(path, 200), ": no PEM certificate in the file"));
  }
  return certs;
}

absl::Time AsnTime(const ASN1_TIME* t) {
  struct tm tm = {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromTimeT(timegm(&tm));
}

// The identity of the certificate's first relay:// URI SAN, or "".
std::string CertificateIdentity(X509* cert) {
  std::unique_ptr<GENERAL_NAMES, NamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (names == nullptr) return "";
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    absl::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                           static_cast<size_t>(ASN1_STRING_length(uri)));
    if (absl::ConsumePrefix(&text, kIdentityScheme) && !text.empty()) return std::string(text);
  }
  return "";
}

struct Watched {
  TlsFiles files;
  std::weak_ptr<grpc::experimental::FileWatcherCertificateProvider> provider;
};

// One file watcher per distinct files, shared by the process's servers and
// channels while any of them lives (each watcher polls its files on a
// thread of gRPC's; the credentials own it).
std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> Provider(
    const TlsFiles& files) {
  static absl::Mutex* const mu = new absl::Mutex;                         // never destroyed
  static std::vector<Watched>* const watched = new std::vector<Watched>;  // never destroyed
  absl::MutexLock lock(mu);
  for (auto it = watched->begin(); it != watched->end();) {
    auto provider = it->provider.lock();
    if (provider == nullptr) {
      it = watched->erase(it);
    } else if (it->files == files) {
      return provider;
    } else {
      ++it;
    }
  }
  const auto interval = static_cast<unsigned int>(absl::ToInt64Seconds(kTlsReloadInterval));
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key_file(), files.cert, files.ca, interval);
  watched->push_back({files, provider});
  return provider;
}

ABSL_CONST_INIT absl::Mutex process_mu(absl::kConstInit);
// Guarded by process_mu.
TlsFiles& ProcessFiles() {
  static TlsFiles* const files = new TlsFiles;  // never destroyed
  return *files;
}

}  // namespace

absl::StatusOr<TlsIdentity> CheckTlsFiles(const TlsFiles& files) {
  TlsIdentity out;
  if (!files.enabled()) return out;
  if (files.cert.empty() && !files.key.empty()) {
    return absl::InvalidArgumentError("TLS: --tls_key needs its certificate (--tls_cert)");
  }
  X509Ptr leaf;
  std::unique_ptr<STACK_OF(X509), StackFree> chain(sk_X509_new_null());
  if (!files.cert.empty()) {
    absl::StatusOr<std::string> pem = ReadPem("TLS certificate", files.cert);
    if (!pem.ok()) return pem.status();
    absl::StatusOr<std::vector<X509Ptr>> certs =
        ParseCertificates("TLS certificate", files.cert, *pem);
    if (!certs.ok()) return certs.status();
    leaf = std::move((*certs)[0]);
    for (size_t i = 1; i < certs->size(); ++i) sk_X509_push(chain.get(), (*certs)[i].release());

    absl::StatusOr<std::string> key_pem = files.key.empty() ? *pem : ReadPem("TLS key", files.key);
    if (!key_pem.ok()) return key_pem.status();
    std::unique_ptr<BIO, BioFree> bio(
        BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
    std::unique_ptr<EVP_PKEY, KeyFree> key(
        PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    ERR_clear_error();
    if (key == nullptr && files.key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS certificate ", Excerpt(files.cert, 200),
                       " holds no private key: give its key with --tls_key"));
    }
    if (key == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS key ", Excerpt(files.key, 200), ": no PEM private key in the file"));
    }
    if (X509_check_private_key(leaf.get(), key.get()) != 1) {
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat("TLS key ", Excerpt(files.key_file(), 200),
                                                     " is not the key of the certificate ",
                                                     Excerpt(files.cert, 200)));
    }
    out.identity = CertificateIdentity(leaf.get());
    out.not_after = AsnTime(X509_get0_notAfter(leaf.get()));
    if (X509_cmp_current_time(X509_get0_notAfter(leaf.get())) < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS certificate ", Excerpt(files.cert, 200), " expired at ",
                       absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", out.not_after, absl::UTCTimeZone()),
                       " (scripts/dev-pki issues a new one)"));
    }
    if (X509_cmp_current_time(X509_get0_notBefore(leaf.get())) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS certificate ", Excerpt(files.cert, 200), " is not valid yet"));
    }
  }
  if (!files.ca.empty()) {
    absl::StatusOr<std::string> pem = ReadPem("TLS CA", files.ca);
    if (!pem.ok()) return pem.status();
    absl::StatusOr<std::vector<X509Ptr>> cas = ParseCertificates("TLS CA", files.ca, *pem);
    if (!cas.ok()) return cas.status();
    if (leaf != nullptr) {
      std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
      for (X509Ptr& ca : *cas) X509_STORE_add_cert(store.get(), ca.get());
      std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
      X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), chain.get());
      const bool ok = X509_verify_cert(ctx.get()) == 1;
      const int error = X509_STORE_CTX_get_error(ctx.get());
      ERR_clear_error();
      if (!ok) {
        return absl::InvalidArgumentError(
            absl::StrCat("TLS certificate ", Excerpt(files.cert, 200), " does not chain to CA ",
                         Excerpt(files.ca, 200), ": ", X509_verify_cert_error_string(error)));
      }
    }
  }
  return out;
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureServerCredentials();
  grpc::experimental::TlsServerCredentialsOptions options(Provider(files));
  if (!files.cert.empty()) options.watch_identity_key_cert_pairs();
  if (!files.ca.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const TlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureChannelCredentials();
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(Provider(files));
  if (!files.cert.empty()) options.watch_identity_key_cert_pairs();
  // Without a CA, gRPC verifies the server with the system's CAs.
  if (!files.ca.empty()) options.watch_root_certs();
  options.set_verify_server_certs(true);
  return grpc::experimental::TlsCredentials(options);
}

void SetProcessTls(const TlsFiles& files) {
  absl::MutexLock lock(&process_mu);
  ProcessFiles() = files;
}

TlsFiles ProcessTls() {
  absl::MutexLock lock(&process_mu);
  return ProcessFiles();
}

std::string PeerIdentity(const grpc::AuthContext& context) {
  if (!context.IsPeerAuthenticated()) return "";
  for (const char* property : {GRPC_PEER_URI_PROPERTY_NAME, GRPC_X509_SAN_PROPERTY_NAME}) {
    for (const grpc::string_ref& value : context.FindPropertyValues(property)) {
      absl::string_view text(value.data(), value.size());
      if (absl::ConsumePrefix(&text, kIdentityScheme) && !text.empty()) return std::string(text);
    }
  }
  return "";
}

bool IsLoopbackAddress(absl::string_view address) {
  if (absl::StartsWith(address, "unix:")) return true;
  absl::ConsumePrefix(&address, "dns:///");
  absl::ConsumePrefix(&address, "ipv4:");
  absl::ConsumePrefix(&address, "ipv6:");
  absl::string_view host = address;
  if (absl::ConsumePrefix(&host, "[")) {
    host = host.substr(0, host.find(']'));
  } else if (size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

void WarnIfPlaintext(absl::string_view role, absl::string_view address, const TlsFiles& files) {
  if (files.enabled() || IsLoopbackAddress(address)) return;
  static absl::Mutex* const mu = new absl::Mutex;  // never destroyed
  static auto* const warned = new absl::flat_hash_set<std::string>;
  {
    absl::MutexLock lock(mu);
    if (!warned->insert(absl::StrCat(role, " ", address)).second) return;
  }
  RELAY_LOG(Warn,
            "PLAINTEXT: no TLS on a non-loopback address; anyone on the network can read and "
            "forge this traffic (give --tls_cert, --tls_key and --tls_ca; docs/SECURITY.md)",
            {{"role", std::string(role)}, {"address", std::string(address)}});
}

}  // namespace relay
