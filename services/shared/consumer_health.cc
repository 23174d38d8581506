#include "services/shared/consumer_health.h"

#include <grpcpp/health_check_service_interface.h>

namespace relay::services {

std::function<void(const absl::Status&)> ConsumerHealth::Watcher(const std::string& name) {
  return [this, name](const absl::Status& refusal) { Set(name, refusal); };
}

void ConsumerHealth::Attach(grpc::Server* server) {
  absl::MutexLock lock(&mu_);
  server_ = server;
  ApplyLocked();
}

absl::Status ConsumerHealth::status() const {
  absl::MutexLock lock(&mu_);
  return refused_.empty() ? absl::OkStatus() : refused_.begin()->second;
}

void ConsumerHealth::Set(const std::string& name, const absl::Status& refusal) {
  absl::MutexLock lock(&mu_);
  if (refusal.ok()) {
    refused_.erase(name);
  } else {
    refused_[name] = refusal;
  }
  ApplyLocked();
}

void ConsumerHealth::ApplyLocked() {
  if (server_ == nullptr) return;
  // Every service of the server and the overall status ("").
  server_->GetHealthCheckService()->SetServingStatus(refused_.empty());
}

}  // namespace relay::services
