#!/bin/sh
# Generates the Python stubs of Relay's public protos into gen/ (gitignored),
# with Debian's grpc_tools (python3-grpc-tools), never PyPI:
#
#   ./generate.sh            (PYTHON=/path/to/python3 to use another interpreter)
#
# Run it again whenever protos/ changes; it replaces gen/ as a whole.
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-/usr/bin/python3}
PROTOS=../../protos

# Debian's grpc_tools.protoc imports pkg_resources without depending on it.
if ! "$PYTHON" -c 'import grpc, google.protobuf, pkg_resources, grpc_tools.protoc' 2>/dev/null; then
  echo "generate.sh: $PYTHON lacks grpc, protobuf or grpc_tools;" \
    "install the Debian packages: apt-get install python3-grpcio python3-grpc-tools" \
    "python3-protobuf python3-pkg-resources" >&2
  exit 1
fi

rm -rf gen.tmp
mkdir gen.tmp
# The events protos are imported by the services' (Money, OrderLine,
# CancelCause); payment is generated too, for anyone extending the example.
"$PYTHON" -m grpc_tools.protoc -I"$PROTOS" --python_out=gen.tmp --grpc_python_out=gen.tmp \
  "$PROTOS"/relay/events/v1/*.proto \
  "$PROTOS"/relay/order/v1/order.proto \
  "$PROTOS"/relay/inventory/v1/inventory.proto \
  "$PROTOS"/relay/payment/v1/payment.proto
rm -rf gen
mv gen.tmp gen
echo "generate.sh: stubs in $(pwd)/gen"
