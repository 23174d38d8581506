#include "services/payment/payment_app.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "services/payment/payment_handlers.h"
#include "services/payment/payment_service.h"
#include "services/payment/payment_store.h"

namespace relay::payment {

PaymentApp::~PaymentApp() { Shutdown(); }

absl::StatusOr<std::unique_ptr<PaymentApp>> PaymentApp::Start(Options options) {
  // The runtime checks the options every service has; this one is payment's.
  if (!(options.decline_rate >= 0 && options.decline_rate <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("decline_rate must be within 0..1, got ", options.decline_rate));
  }
  services::ServiceRuntime::Options ro = services::ServiceRuntime::CommonOptions(options);
  ro.migrations = PaymentMigrations();
  absl::StatusOr<std::unique_ptr<services::ServiceRuntime>> runtime =
      services::ServiceRuntime::Open(std::move(ro));
  if (!runtime.ok()) return runtime.status();
  // From here on, an error destroys `app`, whose runtime stops what started.
  std::unique_ptr<PaymentApp> app(new PaymentApp(std::move(*runtime)));
  services::ServiceRuntime& rt = *app->runtime_;

  if (options.seed) {
    absl::StatusOr<int> seeded = SeedAccountsIfEmpty(*rt.db());
    if (!seeded.ok()) return seeded.status();
    if (*seeded > 0) RELAY_LOG(Info, "seeded accounts", {{"accounts", absl::StrCat(*seeded)}});
  }

  PaymentHandlers::Options handler_options;
  handler_options.decline_rate = options.decline_rate;
  PaymentHandlers* handlers = rt.Own(std::make_unique<PaymentHandlers>(handler_options));
  events::Subscriber::Options subscription = PaymentSubscription();
  subscription.member_name = absl::StrCat(kServiceName, "-", getpid());
  handlers->Register(rt.AddConsumer(std::move(subscription), *handlers));

  PaymentServiceImpl* service =
      rt.Own(std::make_unique<PaymentServiceImpl>(rt.db(), options.decline_rate));
  if (absl::Status s = rt.Start({service}); !s.ok()) return s;
  return app;
}

}  // namespace relay::payment
