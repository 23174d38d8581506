include(GoogleTest)

# Shared settings for Relay's own targets (not for generated code).

# relay_target_options(<target>): warnings as errors and the chosen sanitizers.
function(relay_target_options target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  if(RELAY_THREAD_SAFETY)
    # Clang's static lock analysis over the ABSL_GUARDED_BY /
    # ABSL_EXCLUSIVE_LOCKS_REQUIRED annotations; -beta adds the declared
    # lock order (ABSL_ACQUIRED_AFTER/BEFORE). docs/THREAD_SAFETY.md.
    target_compile_options(${target} PRIVATE -Wthread-safety -Wthread-safety-beta)
  endif()
  if(RELAY_FUZZ)
    # Coverage feedback for libFuzzer in everything a fuzz target calls; the
    # targets themselves link -fsanitize=fuzzer (tests/fuzz). Undefined
    # behaviour aborts, so the fuzzer records it as a crash.
    # -O1: several times the executions per second of -O0, asserts kept.
    target_compile_options(${target} PRIVATE -O1 -fsanitize=fuzzer-no-link
                                             -fno-sanitize-recover=undefined)
  endif()
  if(RELAY_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${RELAY_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${RELAY_SANITIZE})
    if(RELAY_SANITIZE MATCHES "thread")
      # GCC warns that TSan cannot model std::atomic_thread_fence, which
      # Abseil's headers use; the warning is about TSan, not our code.
      target_compile_options(${target} PRIVATE -Wno-tsan)
      # Shadows protobuf's map_field.h so that MapFieldBase keeps the layout
      # of Debian's uninstrumented libprotobuf (cmake/RelayTsan.cmake).
      target_include_directories(${target} SYSTEM BEFORE PRIVATE ${RELAY_TSAN_INCLUDE_DIR})
    endif()
  endif()
endfunction()

# relay_add_library(<name> SOURCES ... DEPS ...)
function(relay_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  relay_target_options(${name})
endfunction()

# relay_add_executable(<name> SOURCES ... DEPS ...)
function(relay_add_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  relay_target_options(${name})
endfunction()

# relay_use_jemalloc(<target>): the target's process allocates with jemalloc
# (Debian's libjemalloc2), which takes the broker's and the services' many
# small, short-lived allocations with less CPU than glibc's malloc
# (bench/README.md#allocator). Not with sanitizers or libFuzzer, which bring
# allocators of their own. With tests, <target>.AllocatesWithJemalloc checks
# that the linker kept it.
function(relay_use_jemalloc target)
  if(NOT RELAY_JEMALLOC OR RELAY_SANITIZE OR RELAY_FUZZ)
    return()
  endif()
  find_library(RELAY_JEMALLOC_LIBRARY NAMES jemalloc)
  if(NOT RELAY_JEMALLOC_LIBRARY)
    message(FATAL_ERROR "jemalloc is missing: run scripts/setup (Debian package libjemalloc-dev) "
                        "or configure with -DRELAY_JEMALLOC=OFF")
  endif()
  # Nothing calls into it by name: Debian's linker keeps it all the same
  # (no --as-needed by default), as <target>.AllocatesWithJemalloc checks.
  target_link_libraries(${target} PRIVATE ${RELAY_JEMALLOC_LIBRARY})
  if(RELAY_BUILD_TESTS)
    add_test(NAME ${target}.AllocatesWithJemalloc
             COMMAND sh -c "ldd \"$1\" | grep -q libjemalloc" sh $<TARGET_FILE:${target}>)
    set_tests_properties(${target}.AllocatesWithJemalloc PROPERTIES LABELS unit)
  endif()
endfunction()

# relay_add_test(<name> SOURCES ... DEPS ... [LABELS ...] [TIMEOUT s])
# One GoogleTest binary, registered with CTest test by test.
function(relay_add_test name)
  if(NOT RELAY_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} relay_testing GTest::gtest GTest::gmock GTest::gtest_main)
  relay_target_options(${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
endfunction()

# ThreadSanitizer against Debian's uninstrumented libraries: docs/TSAN.md.
if(RELAY_SANITIZE MATCHES "thread")
  include(${CMAKE_CURRENT_LIST_DIR}/RelayTsan.cmake)
endif()
