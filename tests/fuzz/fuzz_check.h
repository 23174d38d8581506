#ifndef RELAY_TESTS_FUZZ_FUZZ_CHECK_H_
#define RELAY_TESTS_FUZZ_FUZZ_CHECK_H_

// FUZZ_CHECK(cond): a property of a fuzz target. A violation prints where and
// aborts, which libFuzzer (and the corpus replay test) reports as a crash
// with the input saved.

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                      \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "%s:%d: fuzz property violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

#endif  // RELAY_TESTS_FUZZ_FUZZ_CHECK_H_
