#include "tests/testing/metrics_sample.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/metrics.h"

namespace relay::testing {

std::optional<double> SampleValue(absl::string_view body, absl::string_view sample) {
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (line.size() > sample.size() && absl::StartsWith(line, sample) &&
        line[sample.size()] == ' ') {
      double v = 0;
      if (absl::SimpleAtod(line.substr(sample.size() + 1), &v)) return v;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

double MetricNow(absl::string_view sample) {
  return SampleValue(metrics::Registry::Default().Expose(), sample).value_or(0);
}

}  // namespace relay::testing
