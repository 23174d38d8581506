#include "broker/storage/storage_metrics.h"

namespace relay::broker {

const StorageMetrics& GetStorageMetrics() {
  static const StorageMetrics* m = [] {
    metrics::Registry& r = metrics::Registry::Default();
    return new StorageMetrics{
        &r.AddHistogram("relay_broker_fsync_seconds", "Time of one fsync of a topic's log", {},
                        metrics::LatencyBuckets())
             .With({}),
        &r.AddHistogram("relay_broker_publish_durable_seconds",
                        "A publish batch from its arrival at the log to its answer (durable)", {},
                        metrics::LatencyBuckets())
             .With({}),
        &r.AddCounter("relay_broker_appended_bytes_total",
                      "Bytes of events written to the topic's log", {"topic"}),
        &r.AddCounter("relay_broker_publish_duplicates_total",
                      "Published events dropped as repeats of an id in the dedupe window",
                      {"topic"}),
    };
  }();
  return *m;
}

}  // namespace relay::broker
