#!/usr/bin/env bash
# Builds the Java example with Debian's toolchain only (no Gradle or Maven
# download): protoc and grpc_java_plugin generate the stubs, javac compiles
# against the jars in /usr/share/java. ./run.sh runs it.
#   apt-get install default-jdk-headless protobuf-compiler protobuf-compiler-grpc-java-plugin \
#     libgrpc-java libprotobuf-java libnetty-java libperfmark-java libgoogle-gson-java \
#     libgeronimo-annotation-1.3-spec-java
set -euo pipefail
cd "$(dirname "$0")"
source ./classpath.sh
rm -rf build
mkdir -p build/gen build/classes
# grpc-java 1.41's stubs carry @javax.annotation.Generated, which JDK 11+
# no longer has: geronimo-annotation-1.3-spec.jar on the classpath has it.
protoc -I ../../proto -I ../proto -I /usr/include \
  --java_out=build/gen \
  --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin --grpc-java_out=build/gen \
  linkd/v1/link.proto google/rpc/status.proto google/rpc/error_details.proto
javac -nowarn -d build/classes -cp "$CLASSPATH" $(find build/gen src -name '*.java')
