# relay_nats: the NATS C client, for the JetStream storage backend
# (docs/JETSTREAM.md), through pkg-config (libnats.pc). Not through its CMake
# package: Debian 12's cnats-config.cmake names libnats_static.a and
# libprotobuf-c.so, which libnats-dev does not ship, so find_package(cnats)
# stops the configure with a fatal error.
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBNATS REQUIRED IMPORTED_TARGET libnats)
add_library(relay_nats INTERFACE)
target_link_libraries(relay_nats INTERFACE PkgConfig::LIBNATS)
