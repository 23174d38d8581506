// Relay's ThreadSanitizer build only (cmake/RelayTsan.cmake, docs/TSAN.md):
// linked into every executable, exported by absl-exports.dynlist.
//
// gRPC guarantees that a server reactor's OnDone() is its last reaction: the
// call's refcount (ServerCallbackCall::callbacks_outstanding_) drops to zero
// only after every other reaction returned, and the thread that drops it
// schedules OnDone(). The decrements made by our reactions run in our
// TSan-compiled copy of the inline header code, but one of them runs inside
// libgrpc++.so (the call's CompletionOp), uninstrumented. When that one is the
// last, TSan never sees the acquire, so it reports every access of OnDone()
// (typically `delete this`) as racing with the earlier reactions. This
// definition interposes libgrpc++'s ScheduleOnDone(), which the thread that
// dropped the count to zero calls next, and adds the missing acquire before
// handing over to the real one.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#include <grpcpp/support/server_callback.h>

namespace grpc {
namespace internal {

void ServerCallbackCall::ScheduleOnDone(bool inline_ondone) {
  using Real = void (*)(ServerCallbackCall*, bool);
  static const Real real = reinterpret_cast<Real>(
      dlsym(RTLD_NEXT, "_ZN4grpc8internal18ServerCallbackCall14ScheduleOnDoneEb"));
  if (real == nullptr) {
    std::fprintf(stderr, "relay tsan hooks: libgrpc++'s ServerCallbackCall::ScheduleOnDone not found\n");
    std::abort();
  }
  __tsan_acquire(&callbacks_outstanding_);
  real(this, inline_ondone);
}

}  // namespace internal
}  // namespace grpc
