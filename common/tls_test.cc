// TLS on real gRPC servers with certificates from scripts/dev-pki: the
// checks a binary runs at start, who may connect, and certificate rotation.

#include "common/tls.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/auth_context.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_channel.h"
#include "common/grpc_server.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/dev_pki.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::relay::testing::PkiFiles;
using ::relay::testing::ReadFile;
using ::relay::testing::RunDevPki;
using ::testing::HasSubstr;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RunDevPki(pki_).ok());
    // A second CA with its own certificates for the same names.
    ASSERT_TRUE(RunDevPki(other_, {"--ca-name", "Another CA"}).ok());
  }

  // A server with only grpc.health.v1, on 127.0.0.1, with `tls`.
  RunningServer Serve(const TlsFiles& tls) {
    absl::StatusOr<RunningServer> server = StartGrpcServer("127.0.0.1:0", {}, {}, tls);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : RunningServer{};
  }

  // A health check over a new channel to `port` with `tls`; `context`
  // (when given) keeps the call's auth context.
  static grpc::Status Check(std::shared_ptr<grpc::Channel> channel,
                            grpc::ClientContext* context = nullptr) {
    grpc::ClientContext local;
    grpc::ClientContext* ctx = context != nullptr ? context : &local;
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    HealthCheckRequest request;
    HealthCheckResponse response;
    return Health::NewStub(channel)->Check(ctx, request, &response);
  }

  // A channel with a connection of its own (gRPC would otherwise share one
  // connection between channels with the same target and credentials).
  static std::shared_ptr<grpc::Channel> Dial(int port, const TlsFiles& tls,
                                             const std::string& host_override = "") {
    grpc::ChannelArguments args = MakeChannelArguments();
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    if (!host_override.empty()) args.SetSslTargetNameOverride(host_override);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), MakeChannelCredentials(tls),
                                     args);
  }

  // The PEM certificate the server presented on `context`'s call.
  static std::string ServerPem(const grpc::ClientContext& context) {
    std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
    if (auth == nullptr) return "";
    for (const grpc::string_ref& v : auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME)) {
      return std::string(v.data(), v.size());
    }
    return "";
  }

  testing::TempDir dir_;
  const std::string pki_ = dir_.Join("pki");
  const std::string other_ = dir_.Join("other");
};

TEST_F(TlsTest, CheckTlsFilesReadsTheIdentityAndExpiry) {
  absl::StatusOr<TlsIdentity> id = CheckTlsFiles(PkiFiles(pki_, "payment-service"));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->identity, "payment-service");
  EXPECT_GT(id->not_after, absl::Now() + absl::Hours(24 * 6));
  EXPECT_LT(id->not_after, absl::Now() + absl::Hours(24 * 8));
  // Plaintext is fine, with no identity.
  absl::StatusOr<TlsIdentity> none = CheckTlsFiles({});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->identity, "");
}

TEST_F(TlsTest, CheckTlsFilesRefusesBadFilesWithAShortMessage) {
  const std::string crt = pki_ + "/broker.crt", key = pki_ + "/broker.key", ca = pki_ + "/ca.crt";
  auto error = [](const TlsFiles& files) {
    absl::StatusOr<TlsIdentity> id = CheckTlsFiles(files);
    EXPECT_FALSE(id.ok());
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_LT(id.status().message().size(), 600u);
    return std::string(id.status().message());
  };
  // The certificate and key apart, as the binaries also take them.
  EXPECT_TRUE(CheckTlsFiles({crt, key, ca}).ok());
  EXPECT_THAT(error({crt, "", ca}), HasSubstr("holds no private key: give its key with --tls_key"));
  EXPECT_THAT(error({"", key, ca}), HasSubstr("--tls_key needs its certificate"));
  EXPECT_THAT(error({dir_.Join("missing.crt"), key, ca}),
              HasSubstr("missing.crt': cannot read the file"));
  // A key where the certificate should be, and the other way round.
  EXPECT_THAT(error({key, key, ca}), HasSubstr("no PEM certificate"));
  EXPECT_THAT(error({crt, crt, ca}), HasSubstr("no PEM private key"));
  EXPECT_THAT(error({crt, pki_ + "/relayctl.key", ca}),
              HasSubstr("is not the key of the certificate"));
  EXPECT_THAT(error({pki_ + "/broker.pem", "", other_ + "/ca.crt"}),
              HasSubstr("does not chain to CA"));
  ASSERT_TRUE(RunDevPki(pki_, {"--name", "relayctl", "--renew", "--days", "-1"}).ok());
  EXPECT_THAT(error(PkiFiles(pki_, "relayctl")), HasSubstr("expired at"));
}

TEST_F(TlsTest, MutualTlsServesAClientOfTheSameCaAndNamesBothSides) {
  RunningServer server = Serve(PkiFiles(pki_, "broker"));
  grpc::ClientContext context;
  grpc::Status status = Check(Dial(server.port, PkiFiles(pki_, "relayctl")), &context);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // The client knows whom it reached.
  EXPECT_EQ(PeerIdentity(*context.auth_context()), "broker");
  EXPECT_EQ(ServerPem(context), ReadFile(pki_ + "/broker.crt"));
}

TEST_F(TlsTest, MutualTlsRefusesClientsWithoutAGoodCertificate) {
  RunningServer server = Serve(PkiFiles(pki_, "broker"));
  const TlsFiles good = PkiFiles(pki_, "relayctl");
  // Plaintext.
  EXPECT_EQ(Check(Dial(server.port, {})).error_code(), grpc::StatusCode::UNAVAILABLE);
  // TLS without a client certificate.
  EXPECT_EQ(Check(Dial(server.port, {"", "", good.ca})).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // A certificate from another CA (which trusts our server's CA).
  TlsFiles foreign = PkiFiles(other_, "relayctl");
  foreign.ca = good.ca;
  EXPECT_EQ(Check(Dial(server.port, foreign)).error_code(), grpc::StatusCode::UNAVAILABLE);
  // An expired certificate of our CA.
  ASSERT_TRUE(RunDevPki(pki_, {"--name", "expired", "--days", "-1"}).ok());
  EXPECT_EQ(Check(Dial(server.port, PkiFiles(pki_, "expired"))).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // And the good one still gets in.
  EXPECT_TRUE(Check(Dial(server.port, good)).ok());
}

TEST_F(TlsTest, ClientsVerifyTheServer) {
  RunningServer server = Serve(PkiFiles(pki_, "broker"));
  // A client that trusts only the other CA refuses our server.
  TlsFiles distrustful = PkiFiles(pki_, "relayctl");
  distrustful.ca = other_ + "/ca.crt";
  EXPECT_EQ(Check(Dial(server.port, distrustful)).error_code(), grpc::StatusCode::UNAVAILABLE);
  // A host name the certificate does not name is refused too.
  EXPECT_EQ(
      Check(Dial(server.port, PkiFiles(pki_, "relayctl"), "not-the-broker.example")).error_code(),
      grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, ARenewedCertificateServesNewConnectionsAndOpenOnesStay) {
  RunningServer server = Serve(PkiFiles(pki_, "broker"));
  const TlsFiles client = PkiFiles(pki_, "relayctl");
  const std::string old_pem = ReadFile(pki_ + "/broker.crt");
  std::shared_ptr<grpc::Channel> open = Dial(server.port, client);
  {
    grpc::ClientContext context;
    ASSERT_TRUE(Check(open, &context).ok());
    ASSERT_EQ(ServerPem(context), old_pem);
  }
  ASSERT_TRUE(RunDevPki(pki_, {"--name", "broker", "--renew"}).ok());
  const std::string new_pem = ReadFile(pki_ + "/broker.crt");
  ASSERT_NE(new_pem, old_pem);
  // Within the watcher's interval, a new connection gets the new one.
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        grpc::ClientContext context;
        return Check(Dial(server.port, client), &context).ok() && ServerPem(context) == new_pem;
      },
      absl::Seconds(10)));
  // The connection made before still works, on its old handshake.
  grpc::ClientContext context;
  ASSERT_TRUE(Check(open, &context).ok());
  EXPECT_EQ(ServerPem(context), old_pem);
}

TEST(TlsAddressTest, LoopbackAddresses) {
  for (const char* a : {"127.0.0.1:7070", "localhost:7070", "[::1]:7070", "unix:/tmp/s",
                        "127.1.2.3:1", "dns:///localhost:7070"}) {
    EXPECT_TRUE(IsLoopbackAddress(a)) << a;
  }
  for (const char* a :
       {"0.0.0.0:7070", "broker:7070", "10.0.0.1:7070", "[::]:7070", "localhost.example:7070"}) {
    EXPECT_FALSE(IsLoopbackAddress(a)) << a;
  }
}

}  // namespace
}  // namespace relay
