#ifndef RELAY_BROKER_POLICY_H_
#define RELAY_BROKER_POLICY_H_

// Who may say what on the broker: the policy file (docs/SECURITY.md#policy).
// One rule per line; '#' starts a comment:
//
//   allow order-service   publish   orders
//   allow order-service   subscribe inventory,payments group order-service
//   allow relayctl        admin
//
// An identity is the NAME of a client certificate's relay://NAME SAN.
// Topics and groups are comma-separated names or patterns: `*` alone
// matches every name, `prefix*` every name that starts with prefix.
// `admin` covers the read and operator RPCs (Read, ListTopics,
// DescribeGroups). Whatever no rule allows is denied.

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "relay/events/v1/event.pb.h"

namespace relay::broker {

// A parsed policy. Immutable, so shared freely between threads.
class Policy {
 public:
  // The largest policy file read, and the longest line.
  static constexpr size_t kMaxFileBytes = 1 << 20;
  static constexpr size_t kMaxLineBytes = 4096;

  // Parses `text`; `origin` (a path) names it in messages. INVALID_ARGUMENT
  // "<origin>:<line>: <what is wrong>" for the first bad line.
  static absl::StatusOr<std::shared_ptr<const Policy>> Parse(absl::string_view text,
                                                             absl::string_view origin);
  // Reads and parses the file at `path`.
  static absl::StatusOr<std::shared_ptr<const Policy>> Load(const std::string& path);

  // OK, or PERMISSION_DENIED naming the identity, what it asked for, and
  // what the policy does allow it. An empty `identity` (a caller without a
  // relay:// certificate) is denied everything.
  absl::Status MayPublish(absl::string_view identity, absl::string_view topic) const;
  absl::Status MaySubscribe(absl::string_view identity, absl::string_view topic,
                            absl::string_view group) const;
  absl::Status MayAdmin(absl::string_view identity, absl::string_view rpc) const;

  size_t rule_count() const { return rules_.size(); }
  const std::string& origin() const { return origin_; }

 private:
  enum class Action { kPublish, kSubscribe, kAdmin };
  struct Rule {
    int line = 0;
    std::string identity;
    Action action = Action::kAdmin;
    std::vector<std::string> topics;
    std::vector<std::string> groups;
  };

  Policy() = default;
  // What `identity` may do with `action`, for a denial's message.
  std::string Allowed(absl::string_view identity, Action action) const;
  absl::Status Deny(absl::string_view identity, absl::string_view what, Action action) const;

  std::string origin_;
  std::vector<Rule> rules_;
};

// The broker's current policy, replaced by Reload() (SIGHUP). Without a
// policy file every caller may do everything (the plaintext development
// broker). Thread-safe.
class Authorizer {
 public:
  // Allows everything.
  Authorizer() = default;
  // Enforces the policy in `path`; Load's errors.
  static absl::StatusOr<std::unique_ptr<Authorizer>> Open(const std::string& path);

  // Reads the file again. A bad file is refused (its error returned) and
  // the policy in force stays. OK and a no-op without a file.
  absl::Status Reload();

  // Whether a policy is enforced.
  bool enforcing() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  // Rules of the policy in force (0 when not enforcing).
  size_t rule_count() const;

  // Policy's checks on the policy in force; OK when not enforcing.
  absl::Status MayPublish(absl::string_view identity, absl::string_view topic) const;
  absl::Status MaySubscribe(absl::string_view identity, absl::string_view topic,
                            absl::string_view group) const;
  absl::Status MayAdmin(absl::string_view identity, absl::string_view rpc) const;

 private:
  explicit Authorizer(std::string path, std::shared_ptr<const Policy> policy)
      : path_(std::move(path)), policy_(std::move(policy)) {}
  std::shared_ptr<const Policy> Current() const;

  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Policy> policy_ ABSL_GUARDED_BY(mu_);
};

// The broker's word on who published: an event's `source` must be the
// publisher's identity, so that a consumer can trust it. An empty source
// becomes `identity`; another one is PERMISSION_DENIED naming the event
// and both names, and no event of the batch is changed. Does nothing for a
// caller without identity (plaintext).
absl::Status StampSource(absl::string_view identity,
                         google::protobuf::RepeatedPtrField<events::v1::Event>* events);

}  // namespace relay::broker

#endif  // RELAY_BROKER_POLICY_H_
