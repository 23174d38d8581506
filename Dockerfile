# Relay: every binary built once, in one multi-stage build on Debian 12.
#
#   scripts/compose up -d --build          (or: DOCKER_BUILDKIT=1 docker build -t relay:local .)
#
# The base image is debian:bookworm-slim; where no registry can be reached,
# scripts/docker-base-image makes it locally with debootstrap. Needs BuildKit
# (Compose v2 and scripts/compose use it): the build tree lives in a cache
# mount that outlasts the build, so after a one-line edit ninja recompiles
# that one file and relinks, instead of compiling everything again. Layers go
# from rarely to often changed: the packages are installed before any source
# is copied. `docker builder prune` empties the cache (the next build is cold).

############################## build ##############################
FROM debian:bookworm-slim AS build

# The build half of scripts/setup's list: the image is built with tests and
# benchmarks off, so GoogleTest, Google Benchmark, clang-format, git and the
# rest are not needed here.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev libsqlite3-dev libnats-dev libjemalloc-dev libcpp-httplib-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . /src

# Parallel compile jobs (default: every core of the build machine).
ARG BUILD_JOBS=
# build/release is the cache mount (sharing=locked: two builds at once take
# turns instead of sharing one tree); scripts/docker-build rebuilds what
# changed by content, not only by mtime.
RUN --mount=type=cache,id=relay-build-release,target=/src/build/release,sharing=locked \
    scripts/docker-build "${BUILD_JOBS:-$(nproc)}" \
      relay-broker order-service inventory-service payment-service relayctl relay-console \
 && mkdir -p /out \
 && cp build/release/broker/relay-broker \
       build/release/services/order/order-service \
       build/release/services/inventory/inventory-service \
       build/release/services/payment/payment-service \
       build/release/tools/relayctl/relayctl \
       build/release/tools/console/relay-console /out/ \
 && strip --strip-unneeded /out/*

############################## runtime ##############################
FROM debian:bookworm-slim

# The shared libraries the binaries link (checked with ldd below), and
# openssl for relay-dev-pki (compose's pki service makes the certificates
# with this image).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libsqlite3-0 \
      libre2-9 libc-ares2 libssl3 zlib1g libnats3.4 libjemalloc2 libcpp-httplib0.11 \
      openssl \
 && rm -rf /var/lib/apt/lists/*

# A non-root user and its data directories. A new named volume mounted on
# one of them starts with the image's owner, so relay can write it.
RUN groupadd --system --gid 10001 relay \
 && useradd --system --uid 10001 --gid relay --home-dir /var/lib/relay --no-create-home \
      --shell /usr/sbin/nologin relay \
 && mkdir -p /var/lib/relay/broker /var/lib/relay/order /var/lib/relay/inventory /var/lib/relay/payment \
 && chown -R relay:relay /var/lib/relay

COPY --from=build /out/ /usr/local/bin/

# Fail the build here, not at run time, if a library is missing.
RUN set -e; for b in /usr/local/bin/*; do \
      if ldd "$b" | grep 'not found'; then echo "missing libraries for $b" >&2; exit 1; fi; \
    done; relayctl --help >/dev/null

# The development PKI's maker and the broker's policy (docs/SECURITY.md).
# No key or certificate is in the image: compose's pki service makes them at
# start into the pki volume, so every machine has a CA of its own.
COPY scripts/dev-pki /usr/local/bin/relay-dev-pki
COPY broker/policy.conf /etc/relay/policy.conf

# Where each binary keeps its state (flags have RELAY_<BINARY>_<FLAG> env
# equivalents); docker-compose.yml mounts one named volume on each.
ENV RELAY_BROKER_DATA_DIR=/var/lib/relay/broker \
    RELAY_ORDER_DB=/var/lib/relay/order/orders.db \
    RELAY_INVENTORY_DB=/var/lib/relay/inventory/inventory.db \
    RELAY_PAYMENT_DB=/var/lib/relay/payment/payment.db

USER relay
WORKDIR /var/lib/relay
# Ports: broker 7070, order 7071, inventory 7072, payment 7073 (one per
# binary; no EXPOSE, since one image serves all four).
# Exec form: the binary gets SIGTERM itself (compose adds an init as PID 1).
CMD ["relay-broker"]
