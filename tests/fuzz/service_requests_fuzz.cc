// Fuzz target: every service's request validation (services/<svc>/
// <svc>_validation.h), the one place each service checks its requests.
//
// The first input byte picks the request type, the rest is parsed as that
// request (bytes that do not parse are skipped). Properties: no crash and no
// undefined behaviour; a refusal is INVALID_ARGUMENT with a short message
// whatever the input's size (a 2 MB field must never be echoed back); the
// validation is deterministic.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "relay/inventory/v1/inventory.pb.h"
#include "relay/order/v1/order.pb.h"
#include "relay/payment/v1/payment.pb.h"
#include "services/inventory/inventory_validation.h"
#include "services/order/order_validation.h"
#include "services/payment/payment_validation.h"
#include "tests/fuzz/fuzz_check.h"

namespace relay {
namespace {

constexpr size_t kMaxMessageBytes = 512;

// Parses `data` as a `Request` and checks `validate` on it.
template <typename Request>
std::function<void(const uint8_t*, size_t)> Check(absl::Status (*validate)(const Request&)) {
  return [validate](const uint8_t* data, size_t size) {
    Request request;
    if (!request.ParseFromArray(data, static_cast<int>(size))) return;
    const absl::Status status = validate(request);
    FUZZ_CHECK(status.message().size() <= kMaxMessageBytes);
    FUZZ_CHECK(status.ok() || status.code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(validate(request).code() == status.code());
  };
}

const std::vector<std::function<void(const uint8_t*, size_t)>>& Targets() {
  static const auto* targets = new std::vector<std::function<void(const uint8_t*, size_t)>>{
      Check(&order::ValidatePlaceOrder),          Check(&order::ValidateGetOrder),
      Check(&order::ValidateListOrders),          Check(&order::ValidateCancelOrder),
      Check(&order::ValidateWatchOrder),          Check(&inventory::ValidateListProducts),
      Check(&inventory::ValidateGetStock),        Check(&inventory::ValidateSetStock),
      Check(&inventory::ValidateRestock),         Check(&inventory::ValidateListReservations),
      Check(&payment::ValidateListAccounts),      Check(&payment::ValidateGetAccount),
      Check(&payment::ValidateDeposit),           Check(&payment::ValidateGetPayment),
  };
  return *targets;
}

}  // namespace
}  // namespace relay

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& targets = relay::Targets();
  targets[data[0] % targets.size()](data + 1, size - 1);
  return 0;
}
