// Self-test of Relay's ThreadSanitizer build (cmake/RelayTsan.cmake,
// docs/TSAN.md). Fails when one of its pieces is missing:
//  1. protobuf's MapFieldBase has the library's layout in TSan-compiled code
//     (cmake/tsan/include/google/protobuf/map_field.h), and map fields work;
//  2. the executable's TSan-instrumented Abseil synchronization code is what
//     the process uses, also for calls from Debian's .so's (interposition);
//  3. TSan sees the happens-before edges of absl::Mutex, absl::Notification,
//     absl::CondVar and of gRPC's gpr_mu (absl::Mutex inside libgpr.so), so
//     correctly locked code gets no report.
// With --race it races on purpose: ctest expects TSan's report (TSan is
// really on and reporting).
#include <dlfcn.h>
#include <google/protobuf/struct.pb.h>
#include <grpc/support/sync.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace relay_tsan_selftest {
std::size_t MapFieldBaseSizeWithoutTsan();
}

namespace {

#define RELAY_STR2(x) #x
#define RELAY_STR(x) RELAY_STR2(x)

int failures = 0;

void Check(bool ok, const std::string& what) {
  std::printf("tsan_selftest: %s: %s\n", ok ? "ok" : "FAIL", what.c_str());
  if (!ok) ++failures;
}

// "_ZN4absl7debian3" for absl::debian3::, from Debian's absl/base/options.h.
std::string AbslPrefix() {
  std::string ns = RELAY_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  return "4absl" + std::to_string(ns.size()) + ns;
}

// True when the global symbol lookup (the one the PLTs of libgpr.so,
// libabsl_synchronization.so, ... use) finds `symbol` in the executable.
bool ResolvesToExecutable(const std::string& symbol) {
  void* addr = dlsym(RTLD_DEFAULT, symbol.c_str());
  Dl_info where{}, exe{};
  if (addr == nullptr || dladdr(addr, &where) == 0) return false;
  static int anchor;
  if (dladdr(&anchor, &exe) == 0) return false;
  return where.dli_fbase == exe.dli_fbase;
}

void CheckLayout() {
  Check(sizeof(google::protobuf::internal::MapFieldBase) ==
            relay_tsan_selftest::MapFieldBaseSizeWithoutTsan(),
        "MapFieldBase layout matches libprotobuf (" +
            std::to_string(sizeof(google::protobuf::internal::MapFieldBase)) + " bytes)");
  google::protobuf::Struct in;
  (*in.mutable_fields())["answer"].set_number_value(42);
  (*in.mutable_fields())["name"].set_string_value("relay");
  google::protobuf::Struct out;
  bool parsed = out.ParseFromString(in.SerializeAsString());
  Check(parsed && out.fields().size() == 2 && out.fields().at("answer").number_value() == 42 &&
            out.fields().at("name").string_value() == "relay",
        "protobuf map field round trip (google.protobuf.Struct)");
}

void CheckInterposition() {
  const std::string p = AbslPrefix();
  const char* kSymbols[] = {
      "5Mutex4LockEv", "5Mutex6UnlockEv", "7CondVar4WaitEPNS0_5MutexE", "12Notification6NotifyEv",
      "13base_internal13LowLevelAlloc5AllocEm",
      "24synchronization_internal20CreateThreadIdentityEv"};
  for (const char* s : kSymbols) {
    std::string sym = std::string("_ZN") + p + s;
    Check(ResolvesToExecutable(sym), sym + " resolves to the executable");
  }
  // SpinLock's slow path must stay Debian's (see cmake/RelayTsan.cmake).
  std::string slow_lock = "_ZN" + p + "13base_internal8SpinLock8SlowLockEv";
  Check(!ResolvesToExecutable(slow_lock), slow_lock + " stays the library's");
  std::string c_sym = std::string("AbslInternalPerThreadSemWait_") + RELAY_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  Check(ResolvesToExecutable(c_sym), c_sym + " resolves to the executable");
  // cmake/tsan/grpc_hooks.cc
  const char* kGrpcHooks[] = {
      "grpc_call_start_batch", "_ZN4grpc8internal18ServerCallbackCall14ScheduleOnDoneEb",
      "_ZN4grpc8internal18ServerCallbackCall12CallOnCancelEPNS0_13ServerReactorE",
      "_ZN4grpc6Server23UnrefWithPossibleNotifyEv", "_ZN4grpc6Server18UnrefAndWaitLockedEv"};
  for (const char* s : kGrpcHooks) {
    Check(ResolvesToExecutable(s), std::string(s) + " resolves to the executable");
  }
}

// Each of these increments a plain int from two threads under a lock; TSan
// reports a data race (and ctest fails: exit code 66) if it misses the lock.
void LockedCounters() {
  constexpr int kIterations = 2000;
  {
    absl::Mutex mu;
    int counter = 0;
    auto work = [&] {
      for (int i = 0; i < kIterations; ++i) {
        absl::MutexLock lock(&mu);
        ++counter;
      }
    };
    std::thread a(work), b(work);
    a.join();
    b.join();
    Check(counter == 2 * kIterations, "absl::Mutex from instrumented code");
  }
  {
    gpr_mu mu;
    gpr_mu_init(&mu);
    int counter = 0;
    auto work = [&] {
      for (int i = 0; i < kIterations; ++i) {
        gpr_mu_lock(&mu);
        ++counter;
        gpr_mu_unlock(&mu);
      }
    };
    std::thread a(work), b(work);
    a.join();
    b.join();
    gpr_mu_destroy(&mu);
    Check(counter == 2 * kIterations, "gpr_mu (absl::Mutex called from libgpr.so)");
  }
  {
    int payload = 0;
    absl::Notification ready;
    std::thread producer([&] {
      payload = 7;
      ready.Notify();
    });
    ready.WaitForNotification();
    int seen = payload;
    producer.join();
    Check(seen == 7, "absl::Notification");
  }
  {
    absl::Mutex mu;
    absl::CondVar cv;
    bool turn = false;
    int payload = 0;
    std::thread consumer([&] {
      absl::MutexLock lock(&mu);
      while (!turn) cv.Wait(&mu);
      payload += 1;
    });
    {
      absl::MutexLock lock(&mu);
      payload = 1;
      turn = true;
      cv.Signal();
    }
    consumer.join();
    Check(payload == 2, "absl::CondVar");
  }
}

int RaceOnPurpose() {
  int counter = 0;
  auto work = [&] {
    for (int i = 0; i < 1000; ++i) ++counter;
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  std::printf("tsan_selftest: raced on purpose (counter=%d)\n", counter);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--race") == 0) return RaceOnPurpose();
  CheckLayout();
  CheckInterposition();
  LockedCounters();
  std::printf("tsan_selftest: %s\n", failures == 0 ? "all checks passed" : "FAILED");
  return failures == 0 ? 0 : 1;
}
