# ThreadSanitizer against Debian's prebuilt, uninstrumented libraries.
# Included by RelayHelpers.cmake when RELAY_SANITIZE contains "thread"
# (`cmake --preset tsan`). docs/TSAN.md explains each piece:
#
#  * relay_target_options() puts cmake/tsan/include first on the include path
#    of TSan-compiled targets: its google/protobuf/map_field.h keeps
#    protobuf's MapFieldBase layout equal to libprotobuf.so's.
#  * relay_tsan_absl: Abseil's synchronization code (Mutex, CondVar,
#    Notification, per-thread semaphores, LowLevelAlloc, ...)
#    compiled from the Debian source of the installed libabsl-dev WITH
#    -fsanitize=thread against the installed headers (same absl::debian3
#    inline namespace), linked into every executable, whose dynamic symbol
#    table exports it (cmake/tsan/exports.dynlist): the dynamic linker
#    then binds every absl::Mutex call, also those from libgrpc/libgpr/
#    libabsl_*.so, to this instrumented copy, so TSan sees the locks.
#  * relay_tsan_grpc_hooks (cmake/tsan/grpc_hooks.cc), also linked into and
#    exported from every executable: gives TSan the happens-before edges that
#    gRPC's callback API creates inside libgrpc/libgrpc++ (operation start ->
#    completion, last reaction -> OnDone).
#  * cmake/tsan/suppressions.txt (the tsan test preset's TSAN_OPTIONS): makes
#    TSan ignore libc calls made by the uninstrumented libraries.
#  * relay_tsan_selftest (ctest: tsan_selftest, tsan_selftest_detects_race)
#    checks the pieces.
include_guard(GLOBAL)

set(RELAY_TSAN_DIR ${CMAKE_CURRENT_LIST_DIR}/tsan)
set(RELAY_TSAN_INCLUDE_DIR ${RELAY_TSAN_DIR}/include)
set(RELAY_TSAN_SUPPRESSIONS ${RELAY_TSAN_DIR}/suppressions.txt)
set(RELAY_TSAN_DYNLIST ${RELAY_TSAN_DIR}/exports.dynlist)

set(RELAY_ABSL_SOURCE_DIR "" CACHE PATH
  "Unpacked Debian source of the installed libabsl-dev for the TSan build (empty: scripts/tsan-deps unpacks it into <build>/_deps/abseil-src)")

if(RELAY_ABSL_SOURCE_DIR)
  set(_relay_absl_src ${RELAY_ABSL_SOURCE_DIR})
else()
  set(_relay_absl_src ${CMAKE_BINARY_DIR}/_deps/abseil-src)
  # Idempotent and quick once the source is there; fetches it otherwise.
  execute_process(COMMAND ${PROJECT_SOURCE_DIR}/scripts/tsan-deps ${_relay_absl_src}
    RESULT_VARIABLE _relay_tsan_deps_rc)
  if(NOT _relay_tsan_deps_rc EQUAL 0)
    message(FATAL_ERROR
      "RELAY_SANITIZE=thread needs the Debian source of Abseil (the installed libabsl-dev's "
      "version), and scripts/tsan-deps could not provide it (see its message above). Either run "
      "'sudo scripts/tsan-deps ${_relay_absl_src}' (needs apt access to Debian's deb-src archive), "
      "or unpack it yourself ('apt-get source abseil=<version>') and configure with "
      "-DRELAY_ABSL_SOURCE_DIR=<dir>. docs/TSAN.md has the details.")
  endif()
endif()

# Abseil's libabsl_synchronization plus the base internals that hold its
# synchronization state: everything that takes part in absl::Mutex/CondVar
# locking, waiting and thread-identity reuse. Not spinlock.cc: SpinLock's
# Lock()/Unlock() are inline, so the uninstrumented libraries (e.g.
# libabsl_time's clock) call SlowLock()/SlowUnlock() without the TSan
# annotations that an instrumented SlowLock()'s "divert" expects (TSan aborts:
# CHECK failed "thr->ignore_sync > 0"). Our instrumented code keeps Debian's
# SlowLock(), inside its own annotated inline Lock().
set(_relay_tsan_absl_sources
  absl/synchronization/mutex.cc
  absl/synchronization/notification.cc
  absl/synchronization/barrier.cc
  absl/synchronization/blocking_counter.cc
  absl/synchronization/internal/create_thread_identity.cc
  absl/synchronization/internal/per_thread_sem.cc
  absl/synchronization/internal/waiter.cc
  absl/synchronization/internal/graphcycles.cc
  absl/base/internal/spinlock_wait.cc
  absl/base/internal/low_level_alloc.cc
  absl/base/internal/thread_identity.cc)
list(TRANSFORM _relay_tsan_absl_sources PREPEND ${_relay_absl_src}/)
foreach(_f IN LISTS _relay_tsan_absl_sources)
  if(NOT EXISTS ${_f})
    message(FATAL_ERROR "TSan build: ${_f} is missing; RELAY_ABSL_SOURCE_DIR=${_relay_absl_src} "
      "is not an Abseil 20220623 source tree. docs/TSAN.md has the details.")
  endif()
endforeach()
if(NOT absl_VERSION VERSION_EQUAL 20220623)
  message(WARNING "TSan build: built for Abseil 20220623, found ${absl_VERSION}; "
    "cmake/RelayTsan.cmake's source list may need an update.")
endif()

# An OBJECT library: its objects go straight into each executable, all of
# them, so every definition is there to interpose Debian's .so.
add_library(relay_tsan_absl OBJECT ${_relay_tsan_absl_sources})
# No include directory of the source tree: the sources' "absl/..." includes
# must find the installed headers in /usr/include (Debian's options.h, inline
# namespace absl::debian3), which the imported absl targets point to.
target_link_libraries(relay_tsan_absl PUBLIC
  absl::synchronization absl::graphcycles_internal absl::malloc_internal absl::spinlock_wait
  absl::base absl::raw_logging_internal absl::stacktrace absl::symbolize absl::time
  Threads::Threads)
# -O2 like Debian's build: Mutex's slow paths are hot under TSan. -Wno-tsan:
# GCC's note that TSan does not model atomic_thread_fence.
target_compile_options(relay_tsan_absl PRIVATE
  -fsanitize=thread -fno-omit-frame-pointer -O2 -g -Wno-tsan)
set_target_properties(relay_tsan_absl PROPERTIES POSITION_INDEPENDENT_CODE ON)
# LowLevelAlloc's fresh pages must not look written by the mapping thread
# (a known false positive of annotated absl::Mutex; see the header).
set_source_files_properties(${_relay_absl_src}/absl/base/internal/low_level_alloc.cc
  PROPERTIES COMPILE_OPTIONS "-include;${RELAY_TSAN_DIR}/low_level_alloc_prelude.h")

# Hooks that give TSan the happens-before edges that gRPC establishes inside
# its uninstrumented libraries (cmake/tsan/grpc_hooks.cc).
add_library(relay_tsan_grpc_hooks OBJECT ${RELAY_TSAN_DIR}/grpc_hooks.cc)
target_include_directories(relay_tsan_grpc_hooks SYSTEM BEFORE PRIVATE ${RELAY_TSAN_INCLUDE_DIR})
target_include_directories(relay_tsan_grpc_hooks PRIVATE
  $<TARGET_PROPERTY:gRPC::grpc++,INTERFACE_INCLUDE_DIRECTORIES>)
target_link_libraries(relay_tsan_grpc_hooks PUBLIC ${CMAKE_DL_LIBS})
target_compile_options(relay_tsan_grpc_hooks PRIVATE
  -fsanitize=thread -fno-omit-frame-pointer -O2 -g -Wall -Wextra -Werror -Wno-tsan)
set_target_properties(relay_tsan_grpc_hooks PROPERTIES POSITION_INDEPENDENT_CODE ON)

# relay_tsan_link(<executable>): links the instrumented Abseil and the gRPC
# hooks into an executable and exports them from it.
function(relay_tsan_link target)
  target_link_libraries(${target} PRIVATE relay_tsan_absl relay_tsan_grpc_hooks)
  target_link_options(${target} PRIVATE -fsanitize=thread "LINKER:--dynamic-list=${RELAY_TSAN_DYNLIST}")
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${RELAY_TSAN_DYNLIST})
endfunction()

# relay_tsan_instrument(<target>): TSan for a target that relay_target_options
# did not handle (generated code: relay_protos, relayctl's protos). All of our
# code must be instrumented, not only for its own accesses: the gRPC and
# protobuf templates that generated code instantiates (e.g. the client
# reactors' ClientCallbackReaderImpl, whose refcount orders OnDone) are
# emitted once per executable, and the linker may keep the uninstrumented copy.
function(relay_tsan_instrument target)
  target_compile_options(${target} PRIVATE -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
  target_include_directories(${target} SYSTEM BEFORE PRIVATE ${RELAY_TSAN_INCLUDE_DIR})
endfunction()

function(_relay_tsan_collect_targets dir out)
  get_property(found DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    _relay_tsan_collect_targets(${sub} sub_found)
    list(APPEND found ${sub_found})
  endforeach()
  set(${out} ${found} PARENT_SCOPE)
endfunction()

# Runs at the end of the top-level CMakeLists.txt, once every target exists:
# every target that compiles code is instrumented, and every executable gets
# the instrumented Abseil and the gRPC hooks, whichever helper (or none)
# created it.
function(_relay_tsan_finalize)
  if(RELAY_BUILD_TESTS)
    add_executable(relay_tsan_selftest
      ${RELAY_TSAN_DIR}/selftest.cc ${RELAY_TSAN_DIR}/selftest_plain.cc)
    target_link_libraries(relay_tsan_selftest PRIVATE
      protobuf::libprotobuf gRPC::gpr absl::synchronization Threads::Threads ${CMAKE_DL_LIBS})
    relay_target_options(relay_tsan_selftest)
    # The reference side of the layout check: compiled like libprotobuf.
    set_source_files_properties(${RELAY_TSAN_DIR}/selftest_plain.cc
      TARGET_DIRECTORY relay_tsan_selftest PROPERTIES COMPILE_OPTIONS "-fno-sanitize=thread")
    add_test(NAME tsan_selftest COMMAND relay_tsan_selftest)
    add_test(NAME tsan_selftest_detects_race COMMAND relay_tsan_selftest --race)
    set_tests_properties(tsan_selftest tsan_selftest_detects_race PROPERTIES LABELS "unit;tsan")
    set_tests_properties(tsan_selftest_detects_race PROPERTIES
      PASS_REGULAR_EXPRESSION "WARNING: ThreadSanitizer: data race")
  endif()

  _relay_tsan_collect_targets(${CMAKE_SOURCE_DIR} targets)
  set(executables "")
  set(instrumented "")
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(NOT type MATCHES "^(EXECUTABLE|STATIC_LIBRARY|SHARED_LIBRARY|MODULE_LIBRARY|OBJECT_LIBRARY)$"
       OR t MATCHES "^relay_tsan_(absl|grpc_hooks)$")
      continue()
    endif()
    get_target_property(options ${t} COMPILE_OPTIONS)
    if(NOT "${options}" MATCHES "-fsanitize=thread")
      relay_tsan_instrument(${t})
      list(APPEND instrumented ${t})
    endif()
    if(type STREQUAL "EXECUTABLE")
      relay_tsan_link(${t})
      list(APPEND executables ${t})
    endif()
  endforeach()
  list(LENGTH executables count)
  message(STATUS "TSan: instrumented Abseil synchronization from ${_relay_absl_src} linked into ${count} executables")
  if(instrumented)
    message(STATUS "TSan: also instrumented: ${instrumented}")
  endif()
endfunction()
cmake_language(DEFER CALL _relay_tsan_finalize)
