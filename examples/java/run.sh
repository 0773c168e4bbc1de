#!/usr/bin/env bash
# Runs the Java example built by ./build.sh against LINKD_GRPC_ADDR with LINKD_API_KEY.
set -euo pipefail
cd "$(dirname "$0")"
source ./classpath.sh
exec java -cp "build/classes:$CLASSPATH" dev.linkd.example.Example
