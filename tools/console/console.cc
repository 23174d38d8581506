#include "tools/console/console.h"

#include <grpcpp/client_context.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/http_listen.h"
#include "common/text.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "httplib.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "relay/inventory/v1/inventory.grpc.pb.h"
#include "relay/order/v1/order.grpc.pb.h"
#include "relay/payment/v1/payment.grpc.pb.h"
#include "tools/console/assets.h"
#include "tools/relayctl/broker_read.h"
#include "tools/relayctl/event_format.h"
#include "tools/relayctl/trace.h"

namespace relay::console {
namespace {

namespace bv1 = relay::broker::v1;
namespace ov1 = relay::order::v1;
namespace iv1 = relay::inventory::v1;
namespace pv1 = relay::payment::v1;
using google::protobuf::Value;
using relay::events::v1::Event;

constexpr char kJson[] = "application/json";
// Producers seen on a topic's tail are shown for this long after their
// last event.
constexpr absl::Duration kProducerMemory = absl::Minutes(5);
// Events read from each topic's tail per refresh (producers) and from each
// dead-letter topic (the newest dead letters).
constexpr uint32_t kTailEvents = 16;
constexpr uint32_t kDeadLetters = 20;
// The largest request body: an order of 100 items is about 6 KiB of JSON.
constexpr size_t kMaxBody = 64 << 10;
// Open streams at most (--max_streams): each holds a thread.
constexpr int kMaxStreams = 1024;
constexpr absl::Duration kOrderPoll = absl::Milliseconds(200);
// A comment line on an idle stream: proxies and the browser keep it, and a
// write to a client that left fails, which frees its stream slot.
constexpr absl::Duration kHeartbeat = absl::Seconds(5);
constexpr char kHeartbeatLine[] = ": keep-alive\n\n";

Value BoolValue(bool b) {
  Value v;
  v.set_bool_value(b);
  return v;
}

// "order-service at order:7071: UNAVAILABLE: failed to connect", short.
std::string PeerError(const std::string& name, const std::string& address,
                      const grpc::Status& status) {
  std::string code;
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      code = "unreachable";
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      code = "no answer in time";
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
      code = "permission denied";
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      code = "not authenticated";
      break;
    default:
      code = absl::StrCat("error ", static_cast<int>(status.error_code()));
  }
  return absl::StrCat(name, " at ", address, ": ", code, " (", Excerpt(status.error_message(), 160),
                      ")");
}

// One Server-Sent Event; each line of `data` gets its own "data:" field.
std::string Sse(absl::string_view event, absl::string_view data) {
  return absl::StrCat("event: ", event, "\ndata: ", absl::StrReplaceAll(data, {{"\n", "\ndata: "}}),
                      "\n\n");
}

// {"error": message} into `*doc`; returns `status`.
int ErrorDocument(int status, absl::string_view message, std::string* doc) {
  Value v;
  (*v.mutable_struct_value()->mutable_fields())["error"] = ctl::StringValue(std::string(message));
  *doc = ctl::ToJson(v, false);
  return status;
}

void SetError(httplib::Response& res, int status, absl::string_view message) {
  std::string doc;
  res.status = ErrorDocument(status, message, &doc);
  res.set_content(doc, kJson);
}

// What an order's stream has read of its timeline so far: each poll reads
// only the events after it.
struct Timeline {
  std::map<std::string, uint64_t> resume;  // per topic, where the next read starts
  std::vector<Event> events;
};

// The HTTP status for a failed call to a peer.
int HttpStatusFor(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 503;
    default:
      return 502;
  }
}

// The host of a Host header: "127.0.0.1:8080" → "127.0.0.1",
// "[::1]:8080" → "::1", in lower case.
std::string HostOf(absl::string_view header) {
  if (absl::ConsumePrefix(&header, "[")) {
    header = header.substr(0, header.find(']'));
  } else if (size_t colon = header.find(':'); colon != absl::string_view::npos) {
    header = header.substr(0, colon);
  }
  return absl::AsciiStrToLower(header);
}

bool IsTerminal(ov1::OrderStatus s) {
  return s == ov1::ORDER_STATUS_CONFIRMED || s == ov1::ORDER_STATUS_CANCELLED;
}

// A snapshot's inputs from the broker at one time, for the rates.
struct BrokerSample {
  absl::Time at;
  std::map<std::string, uint64_t> topic_end;
  std::map<std::pair<std::string, std::string>, uint64_t> group_committed;
};

double Rate(uint64_t now, uint64_t before, absl::Duration dt) {
  const double seconds = absl::ToDoubleSeconds(dt);
  if (seconds <= 0 || now < before) return 0;
  return static_cast<double>(now - before) / seconds;
}

}  // namespace

class Console::Impl {
 public:
  explicit Impl(const Options& options)
      : options_(options),
        ctx_(ctl::Io{&std::cout, &std::cerr, nullptr, nullptr, nullptr}, options.endpoints,
             options.rpc_timeout, true) {}

  absl::Status Start() {
    if (options_.refresh < absl::Milliseconds(100) || options_.refresh > absl::Hours(1)) {
      // An infinite refresh left the page on its first snapshot for good.
      return absl::InvalidArgumentError(absl::StrCat("console refresh must be 100ms to 1h, got ",
                                                     absl::FormatDuration(options_.refresh)));
    }
    if (options_.allowed_hosts.empty()) {
      return absl::InvalidArgumentError("console allowed_hosts is empty: no request would pass");
    }
    // As a Host header is compared: lower case, without a port or brackets
    // (an IPv6 address without brackets stays whole).
    for (std::string& h : options_.allowed_hosts) {
      const bool port_or_brackets =
          absl::StartsWith(h, "[") || std::count(h.begin(), h.end(), ':') == 1;
      h = port_or_brackets ? HostOf(h) : absl::AsciiStrToLower(h);
    }
    if (options_.max_streams < 1 || options_.max_streams > kMaxStreams) {
      return absl::InvalidArgumentError(
          absl::StrCat("console max_streams must be 1 to ", kMaxStreams, " (a thread each)"));
    }
    if (options_.rpc_timeout < absl::Milliseconds(1) || options_.rpc_timeout > absl::Hours(1)) {
      return absl::InvalidArgumentError("console rpc_timeout must be 1ms to 1h");
    }
    // The first snapshot before the first page asks.
    Refresh();
    Routes();
    absl::StatusOr<int> port = ListenInBackground(http_, options_.listen, "console", &http_thread_);
    if (!port.ok()) return port.status();
    port_ = *port;
    refresher_ = std::thread([this] { RefreshLoop(); });
    return absl::OkStatus();
  }

  ~Impl() { Stop(); }

  int port() const { return port_; }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    // Streams see stopping_ within one wait and end; then httplib's pool
    // drains.
    http_.stop();
    if (http_thread_.joinable()) http_thread_.join();
    if (refresher_.joinable()) refresher_.join();
  }

 private:
  // ---- The snapshot ----

  void RefreshLoop() {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        auto stop = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
        if (mu_.AwaitWithTimeout(absl::Condition(&stop), options_.refresh)) return;
      }
      Refresh();
    }
  }

  // Rebuilds the snapshot. Only the refresh thread (and Start) call it, so
  // the members it alone uses need no lock.
  void Refresh() {
    const absl::Time now = absl::Now();
    Value doc;
    auto& fields = *doc.mutable_struct_value()->mutable_fields();
    fields["time"] = ctl::StringValue(ctl::FormatUtcTime(now));
    fields["refresh_ms"] = ctl::NumberValue(absl::ToDoubleMilliseconds(options_.refresh));
    auto* peers = fields["peers"].mutable_list_value();

    BrokerSection(now, fields, peers);
    InventorySection(fields, peers);
    PaymentSection(fields, peers);
    OrderHealth(peers);

    std::string json = ctl::ToJson(doc, false);
    absl::MutexLock lock(&mu_);
    overview_ = std::move(json);
    ++version_;
  }

  static void AddPeer(google::protobuf::ListValue* peers, const std::string& name,
                      const std::string& address, const std::string& error) {
    Value peer;
    auto& f = *peer.mutable_struct_value()->mutable_fields();
    f["name"] = ctl::StringValue(name);
    f["address"] = ctl::StringValue(address);
    f["ok"] = BoolValue(error.empty());
    f["error"] = ctl::StringValue(error);
    *peers->add_values() = std::move(peer);
  }

  void BrokerSection(absl::Time now, google::protobuf::Map<std::string, Value>& fields,
                     google::protobuf::ListValue* peers) {
    const std::string& address = options_.endpoints.broker;
    auto stub = bv1::Broker::NewStub(ctx_.Channel(address));
    bv1::ListTopicsResponse topics;
    bv1::DescribeGroupsResponse groups;
    grpc::Status status;
    {
      grpc::ClientContext call;
      ctx_.SetDeadline(&call);
      status = stub->ListTopics(&call, bv1::ListTopicsRequest(), &topics);
    }
    if (status.ok()) {
      grpc::ClientContext call;
      ctx_.SetDeadline(&call);
      status = stub->DescribeGroups(&call, bv1::DescribeGroupsRequest(), &groups);
    }
    AddPeer(peers, "relay-broker", address,
            status.ok() ? "" : PeerError("relay-broker", address, status));
    fields["topics"].mutable_list_value();
    fields["groups"].mutable_list_value();
    fields["dead_letters"].mutable_list_value();
    if (!status.ok()) {
      previous_.reset();
      return;
    }

    BrokerSample sample{now, {}, {}};
    const absl::Duration dt = previous_ ? now - previous_->at : absl::ZeroDuration();
    auto* topic_list = fields["topics"].mutable_list_value();
    std::vector<Event> dead;
    for (const bv1::TopicInfo& t : topics.topics()) {
      sample.topic_end[t.name()] = t.end_offset();
      const bool is_dlq = absl::EndsWith(t.name(), ".dlq");
      uint64_t before = t.end_offset();
      if (previous_) {
        auto it = previous_->topic_end.find(t.name());
        if (it != previous_->topic_end.end()) before = it->second;
      }
      // Read again next time when the read failed.
      if (t.end_offset() != tail_seen_[t.name()] &&
          TailRead(*stub, t, is_dlq ? kDeadLetters : kTailEvents, now)) {
        tail_seen_[t.name()] = t.end_offset();
      }
      if (is_dlq) {
        for (const Event& e : dead_letters_[t.name()]) dead.push_back(e);
      }
      Value topic;
      auto& f = *topic.mutable_struct_value()->mutable_fields();
      f["name"] = ctl::StringValue(t.name());
      f["events"] = ctl::NumberValue(static_cast<double>(t.events()));
      f["bytes"] = ctl::NumberValue(static_cast<double>(t.bytes()));
      f["end_offset"] = ctl::NumberValue(static_cast<double>(t.end_offset()));
      f["events_per_s"] = ctl::NumberValue(Rate(t.end_offset(), before, dt));
      f["dead_letter"] = BoolValue(is_dlq);
      auto* producers = f["producers"].mutable_list_value();
      auto& seen = producers_[t.name()];
      for (auto it = seen.begin(); it != seen.end();) {
        if (now - it->second > kProducerMemory) {
          it = seen.erase(it);
        } else {
          *producers->add_values() = ctl::StringValue(it->first);
          ++it;
        }
      }
      *topic_list->add_values() = std::move(topic);
    }

    auto* group_list = fields["groups"].mutable_list_value();
    for (const bv1::GroupInfo& g : groups.groups()) {
      const auto key = std::make_pair(g.topic(), g.group());
      sample.group_committed[key] = g.committed_offset();
      uint64_t before = g.committed_offset();
      if (previous_) {
        auto it = previous_->group_committed.find(key);
        if (it != previous_->group_committed.end()) before = it->second;
      }
      Value group = ctl::ToJsonValue(g);
      (*group.mutable_struct_value()->mutable_fields())["acks_per_s"] =
          ctl::NumberValue(Rate(g.committed_offset(), before, dt));
      *group_list->add_values() = std::move(group);
    }

    ctl::SortByPublishTime(&dead);
    auto* dead_list = fields["dead_letters"].mutable_list_value();
    for (auto it = dead.rbegin(); it != dead.rend() && dead_list->values_size() < 50; ++it) {
      *dead_list->add_values() = ctl::EventToJsonValue(*it);
    }
    previous_ = std::move(sample);
  }

  // Reads the last `count` events of `t`: their sources are the topic's
  // producers; a dead-letter topic's are its newest dead letters. False
  // when the read failed.
  bool TailRead(bv1::Broker::Stub& stub, const bv1::TopicInfo& t, uint32_t count, absl::Time now) {
    if (t.end_offset() == t.first_offset()) return true;
    bv1::ReadRequest request;
    request.set_topic(t.name());
    request.set_offset(t.end_offset() -
                       std::min<uint64_t>(count, t.end_offset() - t.first_offset()));
    request.set_max_events(count);
    grpc::ClientContext call;
    ctx_.SetDeadline(&call);
    bv1::ReadResponse response;
    if (!stub.Read(&call, request, &response).ok()) return false;
    for (const Event& e : response.events()) {
      if (!e.source().empty()) producers_[t.name()][e.source()] = now;
    }
    if (absl::EndsWith(t.name(), ".dlq")) {
      dead_letters_[t.name()].assign(response.events().begin(), response.events().end());
    }
    return true;
  }

  void InventorySection(google::protobuf::Map<std::string, Value>& fields,
                        google::protobuf::ListValue* peers) {
    const std::string& address = options_.endpoints.inventory;
    auto stub = iv1::InventoryService::NewStub(ctx_.Channel(address));
    grpc::ClientContext call;
    ctx_.SetDeadline(&call);
    iv1::ListProductsResponse products;
    grpc::Status s = stub->ListProducts(&call, iv1::ListProductsRequest(), &products);
    AddPeer(peers, "inventory-service", address,
            s.ok() ? "" : PeerError("inventory-service", address, s));
    auto* list = fields["products"].mutable_list_value();
    for (const iv1::Product& p : products.products()) *list->add_values() = ctl::ToJsonValue(p);
  }

  void PaymentSection(google::protobuf::Map<std::string, Value>& fields,
                      google::protobuf::ListValue* peers) {
    const std::string& address = options_.endpoints.payment;
    auto stub = pv1::PaymentService::NewStub(ctx_.Channel(address));
    grpc::ClientContext call;
    ctx_.SetDeadline(&call);
    pv1::ListAccountsResponse accounts;
    grpc::Status s = stub->ListAccounts(&call, pv1::ListAccountsRequest(), &accounts);
    AddPeer(peers, "payment-service", address,
            s.ok() ? "" : PeerError("payment-service", address, s));
    auto* list = fields["accounts"].mutable_list_value();
    for (const pv1::Account& a : accounts.accounts()) *list->add_values() = ctl::ToJsonValue(a);
  }

  void OrderHealth(google::protobuf::ListValue* peers) {
    const std::string& address = options_.endpoints.order;
    auto stub = grpc::health::v1::Health::NewStub(ctx_.Channel(address));
    grpc::ClientContext call;
    ctx_.SetDeadline(&call);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status s = stub->Check(&call, grpc::health::v1::HealthCheckRequest(), &response);
    std::string error;
    if (!s.ok()) {
      error = PeerError("order-service", address, s);
    } else if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
      error = absl::StrCat("order-service at ", address, ": not serving");
    }
    AddPeer(peers, "order-service", address, error);
  }

  // ---- HTTP ----

  void Routes() {
    // Each open stream holds a thread; the rest serve the page and its
    // requests.
    const size_t threads = static_cast<size_t>(options_.max_streams) + 8;
    http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http_.set_payload_max_length(kMaxBody);
    http_.set_keep_alive_timeout(2);
    // A page of another site that makes its own name resolve to 127.0.0.1
    // (DNS rebinding) is same-origin with the console, but its requests
    // carry its own name as Host: only the names the console is reached by
    // get an answer.
    http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      const std::string host = HostOf(req.get_header_value("Host"));
      if (std::find(options_.allowed_hosts.begin(), options_.allowed_hosts.end(), host) ==
          options_.allowed_hosts.end()) {
        SetError(res, 403,
                 absl::StrCat("host ", Excerpt(host), " is not one this console answers to (",
                              absl::StrJoin(options_.allowed_hosts, ", "), "; --allowed_hosts)"));
        return httplib::Server::HandlerResponse::Handled;
      }
      // Before the body is read: the payload limit holds only against a
      // Content-Length, so a chunked or compressed body (which the library
      // would read, and inflate, whole) or one without a length is refused.
      if (req.method != "GET" && req.method != "HEAD") {
        if (req.has_header("Transfer-Encoding") || !req.has_header("Content-Length")) {
          SetError(res, 411, "a request body needs a Content-Length (no chunked encoding)");
          return httplib::Server::HandlerResponse::Handled;
        }
        const std::string encoding = req.get_header_value("Content-Encoding");
        if (!encoding.empty() && !absl::EqualsIgnoreCase(encoding, "identity")) {
          SetError(res, 415, "a request body must not be compressed");
          return httplib::Server::HandlerResponse::Handled;
        }
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    // No framing (a click on a framed page would place an order), no
    // content sniffing, nothing loaded from anywhere else.
    http_.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
      res.set_header("X-Frame-Options", "DENY");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'");
    });

    for (const Asset& asset : Assets()) {
      const std::string path = asset.path == "index.html" ? "/" : "/" + asset.path;
      http_.Get(path, [&asset](const httplib::Request&, httplib::Response& res) {
        res.set_content(asset.data.data(), asset.data.size(), asset.content_type.c_str());
        res.set_header("Cache-Control", "no-cache");
      });
    }
    http_.Get("/api/overview", [this](const httplib::Request&, httplib::Response& res) {
      absl::MutexLock lock(&mu_);
      res.set_content(overview_, kJson);
    });
    http_.Get("/api/stream",
              [this](const httplib::Request&, httplib::Response& res) { OverviewStream(res); });
    http_.Get("/api/orders", [this](const httplib::Request& req, httplib::Response& res) {
      ListOrders(req, res);
    });
    http_.Post("/api/orders", [this](const httplib::Request& req, httplib::Response& res) {
      PlaceOrder(req, res);
    });
    http_.Get(R"(/api/orders/([^/]+))",
              [this](const httplib::Request& req, httplib::Response& res) {
                std::string doc;
                int status = OrderDocument(req.matches[1], &doc);
                res.status = status;
                res.set_content(doc, kJson);
              });
    http_.Get(R"(/api/orders/([^/]+)/stream)",
              [this](const httplib::Request& req, httplib::Response& res) {
                OrderStream(req.matches[1], res);
              });
    http_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (res.status == 404 && res.body.empty()) {
        SetError(res, 404, absl::StrCat("not found: ", Excerpt(req.path)));
      } else if (res.status == 413) {
        SetError(res, 413, absl::StrCat("request body over ", kMaxBody, " bytes"));
      }
    });
  }

  // Takes one of the stream slots; false (and a 503) when all are taken.
  bool AcquireStream(httplib::Response& res) {
    if (streams_.fetch_add(1) >= options_.max_streams) {
      streams_.fetch_sub(1);
      SetError(res, 503,
               absl::StrCat("too many open streams (", options_.max_streams, "); close a tab"));
      return false;
    }
    return true;
  }

  void OverviewStream(httplib::Response& res) {
    if (!AcquireStream(res)) return;
    auto sent = std::make_shared<uint64_t>(0);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, sent](size_t, httplib::DataSink& sink) {
          std::string data;
          {
            absl::MutexLock lock(&mu_);
            auto changed = [this, sent]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
              return stopping_ || version_ != *sent;
            };
            if (!mu_.AwaitWithTimeout(absl::Condition(&changed), kHeartbeat)) {
              data = kHeartbeatLine;
            } else if (stopping_) {
              return false;
            } else {
              *sent = version_;
              data = Sse("overview", overview_);
            }
          }
          return sink.is_writable() && sink.write(data.data(), data.size());
        },
        [this](bool) { streams_.fetch_sub(1); });
  }

  void ListOrders(const httplib::Request& req, httplib::Response& res) {
    ov1::ListOrdersRequest request;
    const std::string status = absl::AsciiStrToLower(req.get_param_value("status"));
    if (status == "pending") {
      request.set_status(ov1::ORDER_STATUS_PENDING);
    } else if (status == "confirmed") {
      request.set_status(ov1::ORDER_STATUS_CONFIRMED);
    } else if (status == "cancelled") {
      request.set_status(ov1::ORDER_STATUS_CANCELLED);
    } else if (!status.empty() && status != "all") {
      return SetError(
          res, 400,
          absl::StrCat("status ", Excerpt(status), " is not pending, confirmed, cancelled or all"));
    }
    int limit = 20;
    if (req.has_param("limit") &&
        (!absl::SimpleAtoi(req.get_param_value("limit"), &limit) || limit < 1 || limit > 200)) {
      return SetError(res, 400, "limit must be a number in [1, 200]");
    }
    request.set_page_size(limit);
    const std::string& address = options_.endpoints.order;
    auto stub = ov1::OrderService::NewStub(ctx_.Channel(address));
    grpc::ClientContext call;
    ctx_.SetDeadline(&call);
    ov1::ListOrdersResponse response;
    if (grpc::Status s = stub->ListOrders(&call, request, &response); !s.ok()) {
      return SetError(res, HttpStatusFor(s), PeerError("order-service", address, s));
    }
    res.set_content(ctl::ToJson(response, false), kJson);
  }

  void PlaceOrder(const httplib::Request& req, httplib::Response& res) {
    // A form from another site cannot send this content type without the
    // browser asking first (CORS), and the console never says yes.
    if (!absl::StartsWithIgnoreCase(req.get_header_value("Content-Type"), kJson)) {
      return SetError(res, 415, "send the order as application/json");
    }
    ov1::PlaceOrderRequest request;
    google::protobuf::util::JsonParseOptions parse;
    if (auto s = google::protobuf::util::JsonStringToMessage(req.body, &request, parse); !s.ok()) {
      return SetError(
          res, 400,
          absl::StrCat("not a PlaceOrderRequest: ",
                       Excerpt(std::string(s.message().data(), s.message().size()), 120)));
    }
    const std::string& address = options_.endpoints.order;
    auto stub = ov1::OrderService::NewStub(ctx_.Channel(address));
    grpc::ClientContext call;
    ctx_.SetDeadline(&call);
    ov1::PlaceOrderResponse response;
    if (grpc::Status s = stub->PlaceOrder(&call, request, &response); !s.ok()) {
      const int code = HttpStatusFor(s);
      return SetError(res, code,
                      code == 400 ? absl::StrCat("order-service: ", Excerpt(s.error_message(), 200))
                                  : PeerError("order-service", address, s));
    }
    res.status = 201;
    res.set_content(ctl::ToJson(response, false), kJson);
  }

  // The order and its timeline as {"order":...,"trace":...,"terminal":bool,
  // "complete":bool} (complete: terminal and its last event is on the
  // timeline) into `*doc`; returns the HTTP status. A failed timeline read
  // leaves the order and says why in "trace_error". With `timeline`, only
  // the events after what it holds are read, and added to it.
  int OrderDocument(const std::string& order_id, std::string* doc, bool* complete = nullptr,
                    Timeline* timeline = nullptr) {
    if (order_id.empty() || order_id.size() > 128) {
      return ErrorDocument(400, "order id must be 1 to 128 bytes", doc);
    }
    if (!IsUtf8(order_id)) {
      // A proto3 string must be: order-service would refuse the request
      // whole, with an empty error, which read as a failing peer (502).
      return ErrorDocument(400, "order id is not UTF-8", doc);
    }
    const std::string& address = options_.endpoints.order;
    auto stub = ov1::OrderService::NewStub(ctx_.Channel(address));
    ov1::GetOrderRequest get;
    get.set_order_id(order_id);
    ov1::Order order;
    {
      grpc::ClientContext call;
      ctx_.SetDeadline(&call);
      if (grpc::Status s = stub->GetOrder(&call, get, &order); !s.ok()) {
        return ErrorDocument(HttpStatusFor(s),
                             s.error_code() == grpc::StatusCode::NOT_FOUND
                                 ? absl::StrCat("no order ", Excerpt(order_id))
                                 : PeerError("order-service", address, s),
                             doc);
      }
    }
    if (Stopping()) return ErrorDocument(503, "relay-console is stopping", doc);
    Timeline once;
    Timeline& t = timeline != nullptr ? *timeline : once;
    std::string failed;
    std::string trace_error;
    const std::string& broker = options_.endpoints.broker;
    auto broker_stub = bv1::Broker::NewStub(ctx_.Channel(broker));
    // From a little before the order was made: the broker's clock may be
    // behind order-service's.
    const absl::Time since = ctl::ToTime(order.created_at()) - absl::Seconds(5);
    std::vector<Event> fresh;
    const std::map<std::string, uint64_t> resumed = t.resume;
    grpc::Status s = ctl::ReadCorrelated(ctx_, *broker_stub, ctl::DefaultTraceTopics(), order_id,
                                         since, &fresh, &failed, &t.resume);
    if (s.ok()) {
      for (Event& e : fresh) t.events.push_back(std::move(e));
    } else {
      t.resume = resumed;  // what was read is dropped: read it again next time
    }
    ctl::SortByPublishTime(&t.events);
    const std::vector<Event>& events = t.events;
    bv1::DescribeGroupsResponse groups;
    if (s.ok()) {
      grpc::ClientContext call;
      ctx_.SetDeadline(&call);
      s = broker_stub->DescribeGroups(&call, bv1::DescribeGroupsRequest(), &groups);
    }
    if (!s.ok()) trace_error = PeerError("relay-broker", broker, s);

    std::ostringstream trace;
    if (events.empty()) {
      trace << "{\"order_id\":" << ctl::ToJson(ctl::StringValue(order_id), false)
            << ",\"events\":[]}";
    } else {
      ctl::PrintTrace(trace, order_id, events, {groups.groups().begin(), groups.groups().end()},
                      true);
    }
    const bool terminal = IsTerminal(order.status());
    const std::string last_type =
        order.status() == ov1::ORDER_STATUS_CONFIRMED ? "order.confirmed" : "order.cancelled";
    bool has_last = false;
    for (const Event& e : events) has_last |= terminal && e.type() == last_type;
    if (complete != nullptr) *complete = terminal && has_last;

    // PrintTrace's JSON is pretty; JSON has no newline inside a string, so
    // dropping them leaves one line.
    const std::string trace_json = absl::StrReplaceAll(trace.str(), {{"\n", ""}});
    *doc =
        absl::StrCat("{\"order\":", ctl::ToJson(order, false), ",\"trace\":", trace_json,
                     ",\"terminal\":", terminal ? "true" : "false",
                     ",\"complete\":", terminal && has_last ? "true" : "false",
                     ",\"trace_error\":", ctl::ToJson(ctl::StringValue(trace_error), false), "}");
    return 200;
  }

  bool Stopping() {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }

  void OrderStream(const std::string& order_id, httplib::Response& res) {
    struct State {
      std::string last;
      bool complete = false;
      bool ended = false;
      absl::Time deadline;
      absl::Time last_write;
      Timeline timeline;
    };
    auto state = std::make_shared<State>();
    std::string first;
    const int status = OrderDocument(order_id, &first, &state->complete, &state->timeline);
    if (status != 200) {
      res.status = status;
      res.set_content(first, kJson);
      return;
    }
    if (!AcquireStream(res)) return;
    state->deadline = absl::Now() + options_.order_stream_limit;
    state->last_write = absl::Now();
    state->last = first;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, order_id, state, pending = std::make_shared<std::string>(Sse("order", first))](
            size_t, httplib::DataSink& sink) {
          std::string data;
          if (!pending->empty()) {
            data.swap(*pending);
          } else if (state->complete || absl::Now() > state->deadline) {
            if (state->ended) {
              sink.done();
              return true;
            }
            state->ended = true;
            data = Sse("end", state->complete ? "{\"complete\":true}" : "{\"complete\":false}");
          } else {
            {
              absl::MutexLock lock(&mu_);
              auto stop = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
              if (mu_.AwaitWithTimeout(absl::Condition(&stop), kOrderPoll)) return false;
            }
            std::string doc;
            bool complete = false;
            if (OrderDocument(order_id, &doc, &complete, &state->timeline) == 200 &&
                doc != state->last) {
              state->last = doc;
              data = Sse("order", doc);
            }
            state->complete = complete;
            if (data.empty() && absl::Now() - state->last_write >= kHeartbeat) {
              data = kHeartbeatLine;
            }
            if (data.empty()) return sink.is_writable();
          }
          state->last_write = absl::Now();
          return sink.is_writable() && sink.write(data.data(), data.size());
        },
        [this](bool) { streams_.fetch_sub(1); });
  }

  Options options_;  // allowed_hosts lower-cased by Start()
  ctl::Context ctx_;
  httplib::Server http_;
  std::thread http_thread_;
  std::thread refresher_;
  int port_ = 0;
  std::atomic<int> streams_{0};

  // The refresh thread's own (Start's, before the thread exists).
  std::optional<BrokerSample> previous_;
  std::map<std::string, std::map<std::string, absl::Time>> producers_;
  std::map<std::string, uint64_t> tail_seen_;
  std::map<std::string, std::vector<Event>> dead_letters_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string overview_ ABSL_GUARDED_BY(mu_) = "{}";
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::StatusOr<std::unique_ptr<Console>> Console::Start(const Options& options) {
  auto impl = std::make_unique<Impl>(options);
  if (absl::Status s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<Console>(new Console(std::move(impl)));
}

Console::Console(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Console::~Console() { Stop(); }
int Console::port() const { return impl_->port(); }
void Console::Stop() { impl_->Stop(); }

}  // namespace relay::console
