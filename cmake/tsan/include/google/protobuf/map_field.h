// Relay's ThreadSanitizer build only (cmake/RelayTsan.cmake, docs/TSAN.md).
//
// Protobuf 3.21's MapFieldBase gains two members (seq1_, seq2_) when
// __SANITIZE_THREAD__ is defined, so TSan-compiled code would disagree with
// Debian's uninstrumented libprotobuf.so (and with relay_protos, which is
// compiled without TSan) about the layout of every generated message with a
// map field. This header shadows <google/protobuf/map_field.h> (it is first on
// the include path of the TSan-compiled targets) and includes the real one
// with __SANITIZE_THREAD__ undefined, so the layout matches the library. The
// macro stays defined everywhere else: libstdc++ (_GLIBCXX_TSAN in
// shared_ptr), Abseil (ABSL_HAVE_THREAD_SANITIZER annotations) and gRPC keep
// their TSan behaviour.
#ifndef RELAY_TSAN_PROTOBUF_MAP_FIELD_H_
#define RELAY_TSAN_PROTOBUF_MAP_FIELD_H_

// Everything the real header includes, first, with the macro still defined,
// so that only map_field.h itself is read without it.
#include <atomic>
#include <functional>

#include <google/protobuf/arena.h>
#include <google/protobuf/stubs/mutex.h>
#include <google/protobuf/port.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/generated_message_reflection.h>
#include <google/protobuf/generated_message_util.h>
#include <google/protobuf/map_entry.h>
#include <google/protobuf/map_field_lite.h>
#include <google/protobuf/map_type_handler.h>
#include <google/protobuf/message.h>
#include <google/protobuf/repeated_field.h>
#include <google/protobuf/unknown_field_set.h>

#pragma push_macro("__SANITIZE_THREAD__")
#undef __SANITIZE_THREAD__
#include_next <google/protobuf/map_field.h>
#pragma pop_macro("__SANITIZE_THREAD__")

#endif  // RELAY_TSAN_PROTOBUF_MAP_FIELD_H_
