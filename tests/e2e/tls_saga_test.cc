// The saga over mutual TLS with the shipped policy (broker/policy.conf),
// as real processes, while every certificate is renewed: orders keep
// flowing, no stream of the services breaks, and money and stock add up.

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_channel.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/relay_system.h"
#include "tests/testing/dev_pki.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay {
namespace {

// The part of `path` from byte `from` on.
std::string Tail(const std::string& path, size_t from) {
  std::string all = testing::ReadFile(path);
  return from < all.size() ? all.substr(from) : "";
}

// The certificate `target` presents to a new connection of `tls`'s.
std::string PresentedPem(const std::string& target, const TlsFiles& tls) {
  grpc::ChannelArguments args = MakeChannelArguments();
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  auto channel = grpc::CreateCustomChannel(target, MakeChannelCredentials(tls), args);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  grpc::health::v1::HealthCheckResponse response;
  if (!grpc::health::v1::Health::NewStub(channel)->Check(&context, {}, &response).ok()) return "";
  for (const grpc::string_ref& v :
       context.auth_context()->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME)) {
    return std::string(v.data(), v.size());
  }
  return "";
}

TEST(TlsSaga, OrdersFlowOverMutualTlsWhileEveryCertificateIsRenewed) {
  testing::TempDir dir;
  const std::string pki = dir.Join("pki");
  ASSERT_TRUE(testing::RunDevPki(pki).ok());
  testing::RelaySystem system(dir.path(), testing::BuiltBinaries(), {"--checkpoint_interval=50ms"});
  system.EnableTls(pki, RELAY_SHIPPED_POLICY);
  ASSERT_TRUE(system.StartAll());
  ASSERT_TRUE(system.WaitReady(absl::Seconds(30)));

  testing::RelayClients clients(system);
  testing::SeededState initial;
  ASSERT_TRUE(testing::SeedForLoad(clients, 100000000, 100000, &initial));
  testing::OrderLoad load(clients.orders.get(), initial, absl::Milliseconds(20));
  ASSERT_TRUE(testing::WaitFor([&] { return load.accepted() >= 30; }, absl::Seconds(30)));

  // Renew every certificate (new keys, same CA) while orders flow.
  std::map<std::string, size_t> log_sizes;
  for (const char* name : {"order", "inventory", "payment", "broker"}) {
    log_sizes[name] = testing::ReadFile(dir.Join(absl::StrCat(name, ".log"))).size();
  }
  const std::string old_broker_pem = testing::ReadFile(pki + "/broker.crt");
  ASSERT_TRUE(testing::RunDevPki(pki, {"--renew"}).ok());
  const std::string new_broker_pem = testing::ReadFile(pki + "/broker.crt");
  ASSERT_NE(new_broker_pem, old_broker_pem);
  const int accepted_at_renewal = load.accepted();

  // New connections get the broker's new certificate, and the services'.
  EXPECT_TRUE(testing::WaitFor(
      [&] { return PresentedPem(system.Target("broker"), system.client_tls()) == new_broker_pem; },
      absl::Seconds(10)));
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return PresentedPem(system.Target("order"), system.client_tls()) ==
               testing::ReadFile(pki + "/order-service.crt");
      },
      absl::Seconds(10)));
  // A service that starts now connects with its new certificate only.
  testing::Proc& payment = system.Get("payment");
  payment.process.Stop(SIGKILL);
  ASSERT_TRUE(system.Start(payment));
  ASSERT_TRUE(testing::WaitFor([&] { return load.accepted() >= accepted_at_renewal + 50; },
                               absl::Seconds(60)));
  load.Stop();

  testing::Settled settled = testing::Settle(*clients.orders, absl::Seconds(60));
  std::printf("tls saga: %zu orders, confirmed %d, cancelled %d, pending %d\n", settled.all.size(),
              settled.confirmed, settled.cancelled, settled.pending);
  testing::ExpectSettledExactly(clients, initial, settled);

  // No stream of the services that kept running broke over the renewal.
  for (const char* name : {"order", "inventory"}) {
    const std::string tail = Tail(dir.Join(absl::StrCat(name, ".log")), log_sizes[name]);
    for (const char* bad : {"subscription stream ended", "cannot open subscription",
                            "outbox relay cannot publish", "refused"}) {
      EXPECT_FALSE(absl::StrContains(tail, bad)) << name << " logged '" << bad << "':\n" << tail;
    }
  }
  // Nothing was denied: each service spoke only as itself, on its topics.
  EXPECT_FALSE(absl::StrContains(testing::ReadFile(dir.Join("broker.log")), "denied"))
      << testing::ReadFile(dir.Join("broker.log"));
  testing::ExpectCleanStop(system);
}

}  // namespace
}  // namespace relay
