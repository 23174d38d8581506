// Compiled WITHOUT -fsanitize=thread (see cmake/RelayTsan.cmake): reports the
// layout that Debian's libprotobuf.so and relay_protos were built with.
#include <google/protobuf/map_field.h>

#include <cstddef>

namespace relay_tsan_selftest {
std::size_t MapFieldBaseSizeWithoutTsan() { return sizeof(google::protobuf::internal::MapFieldBase); }
}  // namespace relay_tsan_selftest
