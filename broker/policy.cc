#include "broker/policy.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "broker/validation.h"
#include "common/text.h"

namespace relay::broker {
namespace {

constexpr size_t kMaxIdentityBytes = 128;

bool IdentityChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

absl::Status CheckIdentity(absl::string_view identity) {
  if (identity.empty() || identity.size() > kMaxIdentityBytes) {
    return absl::InvalidArgumentError(absl::StrCat("identity must be 1 to ", kMaxIdentityBytes,
                                                   " bytes, got ", Excerpt(identity)));
  }
  for (char c : identity) {
    if (!IdentityChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("identity ", Excerpt(identity),
                       " may hold only a-z, 0-9, '.', '-' and '_' (the NAME of relay://NAME)"));
    }
  }
  return absl::OkStatus();
}

// A comma-separated list of names or patterns (`*`, `prefix*`) of `what`.
absl::StatusOr<std::vector<std::string>> ParseNames(absl::string_view what,
                                                    absl::string_view list) {
  std::vector<std::string> out;
  for (absl::string_view item : absl::StrSplit(list, ',')) {
    if (item == "*") {
      out.emplace_back(item);
      continue;
    }
    absl::string_view name = item;
    const bool prefix = absl::ConsumeSuffix(&name, "*");
    // A prefix need not be a whole name, but must be made of name bytes.
    if (absl::Status s = ValidateName(what, name); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(s.message(), prefix ? " (in a prefix pattern)" : "",
                       " (a name, `*`, or `prefix*`; lists are comma-separated without spaces)"));
    }
    out.emplace_back(item);
  }
  return out;
}

bool Matches(const std::vector<std::string>& patterns, absl::string_view name) {
  for (absl::string_view p : patterns) {
    if (p == "*") return true;
    if (absl::ConsumeSuffix(&p, "*")) {
      if (absl::StartsWith(name, p)) return true;
    } else if (p == name) {
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Policy>> Policy::Parse(absl::string_view text,
                                                            absl::string_view origin) {
  std::shared_ptr<Policy> policy(new Policy);
  policy->origin_ = std::string(origin);
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(origin, ":", line_number, ": ", what));
    };
    if (line.size() > kMaxLineBytes) {
      return error(absl::StrCat("line is ", line.size(), " bytes; the limit is ", kMaxLineBytes));
    }
    if (size_t hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    std::vector<absl::string_view> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (words.empty()) continue;
    const std::string usage =
        "expected `allow IDENTITY publish TOPICS`, `allow IDENTITY subscribe TOPICS group "
        "GROUPS` or `allow IDENTITY admin`";
    if (words[0] != "allow" || words.size() < 3) {
      return error(absl::StrCat(usage, ", got ", Excerpt(absl::StripAsciiWhitespace(line))));
    }
    Rule rule;
    rule.line = line_number;
    if (absl::Status s = CheckIdentity(words[1]); !s.ok()) return error(s.message());
    rule.identity = std::string(words[1]);
    const absl::string_view action = words[2];
    if (action == "publish") {
      if (words.size() != 4) return error(absl::StrCat("publish: ", usage));
      rule.action = Action::kPublish;
    } else if (action == "subscribe") {
      if (words.size() != 6 || words[4] != "group") {
        return error(absl::StrCat("subscribe: ", usage));
      }
      rule.action = Action::kSubscribe;
      absl::StatusOr<std::vector<std::string>> groups = ParseNames("group", words[5]);
      if (!groups.ok()) return error(groups.status().message());
      rule.groups = *std::move(groups);
    } else if (action == "admin") {
      if (words.size() != 3) return error(absl::StrCat("admin takes nothing more: ", usage));
      rule.action = Action::kAdmin;
    } else {
      return error(
          absl::StrCat("unknown action ", Excerpt(action), " (publish, subscribe or admin)"));
    }
    if (rule.action != Action::kAdmin) {
      absl::StatusOr<std::vector<std::string>> topics = ParseNames("topic", words[3]);
      if (!topics.ok()) return error(topics.status().message());
      rule.topics = *std::move(topics);
    }
    policy->rules_.push_back(std::move(rule));
  }
  return std::shared_ptr<const Policy>(std::move(policy));
}

absl::StatusOr<std::shared_ptr<const Policy>> Policy::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy ", Excerpt(path, 200), ": cannot read the file"));
  }
  std::string text(kMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy ", Excerpt(path, 200), ": larger than ", kMaxFileBytes, " bytes"));
  }
  return Parse(text, path);
}

std::string Policy::Allowed(absl::string_view identity, Action action) const {
  std::vector<std::string> allowed;
  for (const Rule& r : rules_) {
    if (r.identity != identity || r.action != action) continue;
    std::string entry = absl::StrJoin(r.topics, ",");
    if (action == Action::kSubscribe)
      absl::StrAppend(&entry, " as group ", absl::StrJoin(r.groups, ","));
    absl::StrAppend(&entry, " (line ", r.line, ")");
    allowed.push_back(std::move(entry));
  }
  return absl::StrJoin(allowed, "; ");
}

absl::Status Policy::Deny(absl::string_view identity, absl::string_view what, Action action) const {
  if (identity.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the caller has no relay:// identity (a client certificate with a relay://NAME SAN) "
        "and may not ",
        what));
  }
  const std::string who = absl::StrCat("relay://", identity);
  const char* verb = action == Action::kPublish     ? "publish"
                     : action == Action::kSubscribe ? "subscribe"
                                                    : "admin";
  const std::string allowed = Allowed(identity, action);
  return absl::PermissionDeniedError(
      absl::StrCat(who, " may not ", what, ": policy ", origin_,
                   allowed.empty() ? absl::StrCat(" has no `", verb, "` rule for it")
                                   // Any admin rule allows: only publish and
                                   // subscribe get here with rules.
                                   : absl::StrCat(" lets it ", verb, " only to ", allowed)));
}

absl::Status Policy::MayPublish(absl::string_view identity, absl::string_view topic) const {
  if (!identity.empty()) {
    for (const Rule& r : rules_) {
      if (r.identity == identity && r.action == Action::kPublish && Matches(r.topics, topic)) {
        return absl::OkStatus();
      }
    }
  }
  return Deny(identity, absl::StrCat("publish to topic ", Excerpt(topic)), Action::kPublish);
}

absl::Status Policy::MaySubscribe(absl::string_view identity, absl::string_view topic,
                                  absl::string_view group) const {
  if (!identity.empty()) {
    for (const Rule& r : rules_) {
      if (r.identity == identity && r.action == Action::kSubscribe && Matches(r.topics, topic) &&
          Matches(r.groups, group)) {
        return absl::OkStatus();
      }
    }
  }
  return Deny(identity,
              absl::StrCat("subscribe to topic ", Excerpt(topic), " as group ", Excerpt(group)),
              Action::kSubscribe);
}

absl::Status Policy::MayAdmin(absl::string_view identity, absl::string_view rpc) const {
  if (!identity.empty()) {
    for (const Rule& r : rules_) {
      if (r.identity == identity && r.action == Action::kAdmin) return absl::OkStatus();
    }
  }
  return Deny(identity, absl::StrCat("call ", rpc, " (an admin RPC)"), Action::kAdmin);
}

absl::Status StampSource(absl::string_view identity,
                         google::protobuf::RepeatedPtrField<events::v1::Event>* events) {
  if (identity.empty()) return absl::OkStatus();
  for (int i = 0; i < events->size(); ++i) {
    const events::v1::Event& e = events->Get(i);
    if (!e.source().empty() && e.source() != identity) {
      return absl::PermissionDeniedError(
          absl::StrCat("event #", i, " (id ", Excerpt(e.id()), ") has source ", Excerpt(e.source()),
                       ", but its publisher is relay://", identity,
                       ": the source must be the publisher's identity (or empty, and the broker "
                       "sets it)"));
    }
  }
  for (events::v1::Event& e : *events) {
    if (e.source().empty()) e.set_source(std::string(identity));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Open(const std::string& path) {
  absl::StatusOr<std::shared_ptr<const Policy>> policy = Policy::Load(path);
  if (!policy.ok()) return policy.status();
  return std::unique_ptr<Authorizer>(new Authorizer(path, *std::move(policy)));
}

absl::Status Authorizer::Reload() {
  if (!enforcing()) return absl::OkStatus();
  absl::StatusOr<std::shared_ptr<const Policy>> policy = Policy::Load(path_);
  if (!policy.ok()) return policy.status();
  absl::MutexLock lock(&mu_);
  policy_ = *std::move(policy);
  return absl::OkStatus();
}

size_t Authorizer::rule_count() const { return enforcing() ? Current()->rule_count() : 0; }

std::shared_ptr<const Policy> Authorizer::Current() const {
  absl::MutexLock lock(&mu_);
  return policy_;
}

absl::Status Authorizer::MayPublish(absl::string_view identity, absl::string_view topic) const {
  if (!enforcing()) return absl::OkStatus();
  return Current()->MayPublish(identity, topic);
}

absl::Status Authorizer::MaySubscribe(absl::string_view identity, absl::string_view topic,
                                      absl::string_view group) const {
  if (!enforcing()) return absl::OkStatus();
  return Current()->MaySubscribe(identity, topic, group);
}

absl::Status Authorizer::MayAdmin(absl::string_view identity, absl::string_view rpc) const {
  if (!enforcing()) return absl::OkStatus();
  return Current()->MayAdmin(identity, rpc);
}

}  // namespace relay::broker
