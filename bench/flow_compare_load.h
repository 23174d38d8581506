#ifndef RELAY_BENCH_FLOW_COMPARE_LOAD_H_
#define RELAY_BENCH_FLOW_COMPARE_LOAD_H_

// flow_compare's client: places orders through order-service's public API
// and follows each to its end as any client would. PlaceOrder's answer is
// the end when it is terminal (--flow=sync) or an error; otherwise a
// WatchOrder stream waits for CONFIRMED or CANCELLED (--flow=events). So
// both flows are timed from the same two points: PlaceOrder sent, end seen.

#include <grpcpp/channel.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "relay/order/v1/order.grpc.pb.h"

namespace relay::bench {

// One order as the client saw it.
struct PlacedOrder {
  int tag = 0;                                   // the caller's label (e.g. which phase)
  absl::Time sent;                               // PlaceOrder sent (its scheduled time, open loop)
  absl::Time answered;                           // PlaceOrder answered
  grpc::StatusCode code = grpc::StatusCode::OK;  // PlaceOrder's code
  std::string order_id;                          // from the answer, or named by the error
  bool ended = false;  // CONFIRMED or CANCELLED seen (or the error said so)
  absl::Time end;      // when
  order::v1::OrderStatus status = order::v1::ORDER_STATUS_PENDING;
  std::string cause;  // cancel cause, lower case ("out_of_stock")
};

// Places orders and tracks them. Thread-safe; callbacks run on gRPC's
// threads and only record.
class OrderLoad {
 public:
  struct Options {
    std::vector<std::string> customers;
    std::vector<std::string> skus;
    absl::Duration rpc_timeout = absl::Seconds(10);
    // How long a WatchOrder may stay open.
    absl::Duration watch_timeout = absl::Seconds(120);
  };
  OrderLoad(std::shared_ptr<grpc::Channel> order_channel, Options options);
  ~OrderLoad();  // waits for every open call to end (cancels the watches)

  // Open loop: order i is due at start + i / rate(t), `rate` read at each
  // send, for `duration`; late sends go at once (no coordinated omission:
  // `sent` is the due time). Returns how many it placed.
  int64_t OpenLoop(const std::function<double(absl::Duration since_start)>& rate,
                   absl::Duration duration, int tag);
  // Closed loop: `clients` orders at a time, each followed to its end
  // before the next, for `duration`. Returns how many ended within it.
  int64_t ClosedLoop(int clients, absl::Duration duration, int tag);
  // Waits until every order placed has ended or failed, or `deadline`.
  bool AwaitQuiet(absl::Time deadline);

  std::vector<PlacedOrder> Orders() const;
  int64_t outstanding() const;

 private:
  class Watch;
  void Place(absl::Time sent, int tag);
  void Answered(int index, const grpc::Status& status, const order::v1::PlaceOrderResponse& r);
  void Ended(int index, const order::v1::Order& order, absl::Time at);
  void WatchDone(int index);

  const Options options_;
  std::unique_ptr<order::v1::OrderService::Stub> stub_;
  mutable absl::Mutex mu_;
  std::vector<PlacedOrder> orders_ ABSL_GUARDED_BY(mu_);
  int64_t open_ ABSL_GUARDED_BY(mu_) = 0;   // placed, not ended or failed
  int64_t calls_ ABSL_GUARDED_BY(mu_) = 0;  // gRPC calls not yet done
  int64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace relay::bench

#endif  // RELAY_BENCH_FLOW_COMPARE_LOAD_H_
