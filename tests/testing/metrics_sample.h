#ifndef RELAY_TESTS_TESTING_METRICS_SAMPLE_H_
#define RELAY_TESTS_TESTING_METRICS_SAMPLE_H_

// Reading Prometheus samples in tests (docs/OBSERVABILITY.md).
//
//   EXPECT_EQ(SampleValue(body, "relay_broker_acks_total{topic=\"orders\",group=\"g\"}"), 25);
//   const double before = MetricNow("relay_order_placed_total");

#include <optional>

#include "absl/strings/string_view.h"

namespace relay::testing {

// The value of `sample` (a name with its labels, exactly as exposed) in a
// text exposition; nullopt when it is absent or not a number.
std::optional<double> SampleValue(absl::string_view body, absl::string_view sample);

// The same in the process's registry now; 0 when absent (a counter that has
// not moved yet, in this process).
double MetricNow(absl::string_view sample);

}  // namespace relay::testing

#endif  // RELAY_TESTS_TESTING_METRICS_SAMPLE_H_
