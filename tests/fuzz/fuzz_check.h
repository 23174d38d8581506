#ifndef RELAY_TESTS_FUZZ_FUZZ_CHECK_H_
#define RELAY_TESTS_FUZZ_FUZZ_CHECK_H_

// FUZZ_CHECK(cond): a property of a fuzz target. A violation prints where and
// aborts, which libFuzzer (and the corpus replay test) reports as a crash
// with the input saved.
//
// Including this header also silences protobuf's log: it prints a line for
// every string field with invalid UTF-8 it refuses to parse, thousands a
// second under a fuzzer.

#include <cstdio>
#include <cstdlib>

#include "google/protobuf/stubs/logging.h"

#define FUZZ_CHECK(cond)                                                                      \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "%s:%d: fuzz property violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

namespace relay::fuzz_internal {
inline const bool kProtobufLogSilenced = (::google::protobuf::SetLogHandler(nullptr), true);
}  // namespace relay::fuzz_internal

#endif  // RELAY_TESTS_FUZZ_FUZZ_CHECK_H_
