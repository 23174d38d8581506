#ifndef RELAY_BROKER_STORAGE_STORAGE_METRICS_H_
#define RELAY_BROKER_STORAGE_STORAGE_METRICS_H_

// The embedded log's hot-path metrics in the process registry
// (docs/OBSERVABILITY.md#broker). Registered on first use; the writer thread
// moves them with relaxed atomic adds.

#include "common/metrics.h"

namespace relay::broker {

struct StorageMetrics {
  // One per fsync of a topic's log, in seconds (its _count: fsyncs done).
  metrics::Histogram* fsync_seconds;
  // A publish batch, from Append() (the broker received it) to its answer
  // (durable, or refused).
  metrics::Histogram* publish_durable_seconds;
  metrics::Family<metrics::Counter>* appended_bytes;  // {topic}: record payloads written
  metrics::Family<metrics::Counter>* duplicates;      // {topic}: ids found in the window
};

const StorageMetrics& GetStorageMetrics();

}  // namespace relay::broker

#endif  // RELAY_BROKER_STORAGE_STORAGE_METRICS_H_
