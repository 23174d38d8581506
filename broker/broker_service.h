#ifndef RELAY_BROKER_BROKER_SERVICE_H_
#define RELAY_BROKER_BROKER_SERVICE_H_

#include "broker/group_manager.h"
#include "broker/policy.h"
#include "broker/storage/event_log.h"
#include "broker/stream_reactors.h"
#include "broker/validation.h"
#include "relay/broker/v1/broker.grpc.pb.h"

namespace relay::broker {

// The gRPC face of the broker (relay.broker.v1.Broker) on the callback API:
// one reactor per streaming RPC, each owned by gRPC from its creation until
// its OnDone(), where it deletes itself. Storage and groups are behind
// EventLog and GroupManager; this class only translates.
//
// Every RPC is checked against `auth` with the caller's identity (its
// client certificate's relay:// name; docs/SECURITY.md), and published
// events get their source from it (StampSource).
//
// Thread-safe. `log`, `groups` and `auth` must outlive the server it is
// registered with.
// The Broker service with Subscribe raw (ByteBuffer both ways; see
// SubscribeReactor) and every other method typed.
using BrokerCallbackBase = v1::Broker::WithCallbackMethod_Publish<
    v1::Broker::WithCallbackMethod_PublishStream<v1::Broker::WithRawCallbackMethod_Subscribe<
        v1::Broker::WithCallbackMethod_ListTopics<v1::Broker::WithCallbackMethod_DescribeGroups<
            v1::Broker::WithCallbackMethod_Read<v1::Broker::Service>>>>>>;

class BrokerService final : public BrokerCallbackBase {
 public:
  BrokerService(EventLog* log, GroupManager* groups, Limits limits, const Authorizer* auth)
      : log_(log), groups_(groups), limits_(limits), auth_(auth) {}

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* context,
                                    const v1::PublishRequest* request,
                                    v1::PublishResponse* response) override;
  grpc::ServerBidiReactor<v1::PublishRequest, v1::PublishResponse>* PublishStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Subscribe(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListTopics(grpc::CallbackServerContext* context,
                                       const v1::ListTopicsRequest* request,
                                       v1::ListTopicsResponse* response) override;
  grpc::ServerUnaryReactor* DescribeGroups(grpc::CallbackServerContext* context,
                                           const v1::DescribeGroupsRequest* request,
                                           v1::DescribeGroupsResponse* response) override;
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context,
                                 const v1::ReadRequest* request,
                                 v1::ReadResponse* response) override;

  // Ends the open Subscribe streams at once and the PublishStreams once
  // their answers in progress are written (both with UNAVAILABLE), and
  // refuses new streams: call before grpc::Server::Shutdown(), which would
  // otherwise wait its whole deadline for idle streams.
  void EndStreams() { streams_.EndAll(); }

  // After the policy changed: ends the Subscribe streams whose caller may
  // no longer subscribe to its topic as its group (PERMISSION_DENIED).
  void Reauthorize() { streams_.ReauthorizeAll(); }

 private:
  StreamRegistry streams_;
  EventLog* const log_;
  GroupManager* const groups_;
  const Limits limits_;
  const Authorizer* const auth_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_BROKER_SERVICE_H_
