#include "common/worker.h"

#include <pthread.h>

#include <utility>

namespace relay {

Worker::Worker(std::string name, Pass pass) : name_(std::move(name)), pass_(std::move(pass)) {}

Worker::~Worker() { Stop(); }

void Worker::Start(absl::Duration first_wait) {
  absl::MutexLock thread_lock(&thread_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || thread_.joinable()) return;
  }
  thread_ = std::thread([this, first_wait] { Run(first_wait); });
}

void Worker::Wake() {
  absl::MutexLock lock(&mu_);
  wake_ = true;
}

void Worker::Stop() {
  absl::MutexLock thread_lock(&thread_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool Worker::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void Worker::Run(absl::Duration wait) {
  // Linux limits a thread name to 15 bytes.
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this] {
        mu_.AssertHeld();
        return wake_ || stopping_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
      if (stopping_) return;
      wake_ = false;
    }
    wait = pass_();
  }
}

}  // namespace relay
