#ifndef RELAY_SERVICES_SHARED_CONSUMER_HEALTH_H_
#define RELAY_SERVICES_SHARED_CONSUMER_HEALTH_H_

#include <grpcpp/server.h>

#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace relay::services {

// Keeps a service's grpc.health.v1 status in step with its subscriptions:
// NOT_SERVING while the broker refuses any of them (Subscriber::refusal(),
// e.g. the group exists with another type filter, so the service would
// never consume again), SERVING once all are accepted. Issue 7, item 5.
//
// Thread-safe.
//
//   ConsumerHealth health;
//   options.subscriber.on_refusal_change = health.Watcher("orders");
//   ... start the server ...
//   health.Attach(server.get());
//   ... at shutdown, before the server goes: health.Attach(nullptr);
class ConsumerHealth {
 public:
  // The callback for Subscriber::Options::on_refusal_change of the
  // subscription `name`.
  std::function<void(const absl::Status&)> Watcher(const std::string& name);

  // Reports to `server` from now on (its status is set at once); nullptr
  // stops reporting. `server` must outlive the next Attach().
  void Attach(grpc::Server* server);

  // OK, or the refusal of one refused subscription.
  absl::Status status() const;

 private:
  void Set(const std::string& name, const absl::Status& refusal);
  void ApplyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  grpc::Server* server_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::map<std::string, absl::Status> refused_ ABSL_GUARDED_BY(mu_);
};

}  // namespace relay::services

#endif  // RELAY_SERVICES_SHARED_CONSUMER_HEALTH_H_
