// Relay's ThreadSanitizer build only (cmake/RelayTsan.cmake, docs/TSAN.md):
// linked into every executable, exported by exports.dynlist so that the
// definitions below interpose libgrpc's / libgrpc++'s.
//
// gRPC orders a callback-API operation's start before its completion, and a
// reactor's last reaction before OnDone(), inside libgrpc/libgrpc++, which
// are not instrumented: TSan does not see these happens-before edges and
// reports races between a reaction and the next one (or OnDone's `delete
// this`) that gRPC's contract rules out. Two hooks make the edges visible:
//
// 1. grpc_call_start_batch(): every batch that libgrpc++ starts for our
//    callback reactors goes through it (through its PLT). When the batch's
//    tag is one of our CallbackWithSuccessTag/CallbackWithStatusTag objects,
//    the hook releases on the tag and points its functor_run at a trampoline
//    that acquires on it before the tag's own StaticRun: the thread that
//    completes the operation then happens after everything the starting
//    thread did before StartRead/StartWrite/Finish/... .
// 2. ServerCallbackCall::ScheduleOnDone(): a server call's refcount
//    (callbacks_outstanding_) reaches zero, after every other reaction, on
//    the thread that then calls ScheduleOnDone(). Our reactions decrement it
//    in our TSan-compiled copy of the header code, but the call's
//    CompletionOp decrements it inside libgrpc++; when that one is last, TSan
//    misses the acquire, and the hook adds it.
// 3. ServerCallbackCall::CallOnCancel(): called by the thread that met the
//    last condition for OnCancel (acquire on on_cancel_conditions_remaining_);
//    libgrpc++ then runs OnCancel() on its executor and decrements the
//    refcount of 2. inside libgrpc++: a proxy reactor releases on the
//    refcount after OnCancel() returns, so OnDone() happens after OnCancel().
// 4. Server::UnrefWithPossibleNotify() / Server::UnrefAndWaitLocked(): every
//    callback call drops a server ref after its OnDone(); Server::Shutdown()
//    waits for the count to reach zero (libgrpc++'s atomics): release before
//    each drop, acquire after the wait, so what OnDone() did happens before
//    Shutdown() returns (and before the service's objects are destroyed).
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include <grpc/grpc.h>
#include <grpcpp/server.h>
#include <grpcpp/support/callback_common.h>
#include <grpcpp/support/server_callback.h>

// Every executable gets this file, also those that do not link libgrpc++:
// the tags' inline code refers to this libgrpc++ variable, so the reference
// is made weak (it is only used once gRPC runs our tags, i.e. is linked).
namespace grpc {
extern CoreCodegenInterface* g_core_codegen_interface __attribute__((weak));
}  // namespace grpc

namespace {

template <typename T>
T RealFunction(const char* name) {
  void* real = dlsym(RTLD_NEXT, name);
  if (real == nullptr) {
    std::fprintf(stderr, "relay tsan hooks: %s not found after the executable\n", name);
    std::abort();
  }
  return reinterpret_cast<T>(real);
}

// The tags' StaticRun functions are private: an explicit instantiation may
// name them (the standard waives access checks there).
using FunctorRun = void (*)(grpc_completion_queue_functor*, int);
template <FunctorRun Run, typename Key>
struct PrivateRun {
  friend FunctorRun StaticRunOf(Key) { return Run; }
};
struct SuccessTagKey {
  friend FunctorRun StaticRunOf(SuccessTagKey);
};
struct StatusTagKey {
  friend FunctorRun StaticRunOf(StatusTagKey);
};
template struct PrivateRun<&grpc::internal::CallbackWithSuccessTag::StaticRun, SuccessTagKey>;
template struct PrivateRun<&grpc::internal::CallbackWithStatusTag::StaticRun, StatusTagKey>;

void SuccessTagTrampoline(grpc_completion_queue_functor* tag, int ok) {
  __tsan_acquire(tag);
  StaticRunOf(SuccessTagKey{})(tag, ok);
}

void StatusTagTrampoline(grpc_completion_queue_functor* tag, int ok) {
  __tsan_acquire(tag);
  StaticRunOf(StatusTagKey{})(tag, ok);
}

}  // namespace

extern "C" grpc_call_error grpc_call_start_batch(grpc_call* call, const grpc_op* ops, size_t nops,
                                                 void* tag, void* reserved) {
  using Real = grpc_call_error (*)(grpc_call*, const grpc_op*, size_t, void*, void*);
  static const Real real = RealFunction<Real>("grpc_call_start_batch");
  // libgrpc++ passes an object as tag: a CallOpSet (its first word is the
  // vtable pointer) or a callback tag (a grpc_completion_queue_functor).
  // Only the tags of this executable's copy of the header code (the ones our
  // reactors use) have this executable's StaticRun.
  if (tag != nullptr && reinterpret_cast<uintptr_t>(tag) % alignof(void*) == 0) {
    auto* functor = static_cast<grpc_completion_queue_functor*>(tag);
    if (functor->functor_run == StaticRunOf(SuccessTagKey{})) {
      functor->functor_run = &SuccessTagTrampoline;
    } else if (functor->functor_run == StaticRunOf(StatusTagKey{})) {
      functor->functor_run = &StatusTagTrampoline;
    }
    if (functor->functor_run == &SuccessTagTrampoline || functor->functor_run == &StatusTagTrampoline) {
      __tsan_release(tag);
    }
  }
  return real(call, ops, nops, tag, reserved);
}

namespace grpc {
namespace internal {

void ServerCallbackCall::ScheduleOnDone(bool inline_ondone) {
  using Real = void (*)(ServerCallbackCall*, bool);
  static const Real real =
      RealFunction<Real>("_ZN4grpc8internal18ServerCallbackCall14ScheduleOnDoneEb");
  __tsan_acquire(&callbacks_outstanding_);
  real(this, inline_ondone);
}

namespace {

// Stands in for the reactor in libgrpc++'s asynchronous OnCancel() closure,
// which only calls OnCancel() on it.
class CancelThenRelease final : public ServerReactor {
 public:
  CancelThenRelease(ServerReactor* reactor, const void* refcount)
      : reactor_(reactor), refcount_(refcount) {}
  void OnCancel() override {
    reactor_->OnCancel();
    __tsan_release(const_cast<void*>(refcount_));
    delete this;
  }
  void OnDone() override {}  // never called: the proxy is not bound to a call
  bool InternalInlineable() override { return false; }

 private:
  ServerReactor* const reactor_;
  const void* const refcount_;
};

}  // namespace

void ServerCallbackCall::CallOnCancel(ServerReactor* reactor) {
  using Real = void (*)(ServerCallbackCall*, ServerReactor*);
  static const Real real = RealFunction<Real>(
      "_ZN4grpc8internal18ServerCallbackCall12CallOnCancelEPNS0_13ServerReactorE");
  __tsan_acquire(&on_cancel_conditions_remaining_);
  if (reactor->InternalInlineable()) {  // runs OnCancel() here, synchronously
    real(this, reactor);
    return;
  }
  real(this, new CancelThenRelease(reactor, &callbacks_outstanding_));
}

}  // namespace internal

void Server::UnrefWithPossibleNotify() {
  using Real = void (*)(Server*);
  static const Real real = RealFunction<Real>("_ZN4grpc6Server23UnrefWithPossibleNotifyEv");
  __tsan_release(&shutdown_refs_outstanding_);
  real(this);
}

void Server::UnrefAndWaitLocked() {
  using Real = void (*)(Server*);
  static const Real real = RealFunction<Real>("_ZN4grpc6Server18UnrefAndWaitLockedEv");
  real(this);
  __tsan_acquire(&shutdown_refs_outstanding_);
}

}  // namespace grpc
