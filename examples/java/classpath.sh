# The jars the Java example needs, from Debian's packages (see build.sh).
J=/usr/share/java
CLASSPATH=$(printf '%s:' \
  $J/protobuf.jar $J/grpc-api.jar $J/grpc-context.jar $J/grpc-core.jar $J/grpc-stub.jar \
  $J/grpc-protobuf.jar $J/grpc-protobuf-lite.jar $J/grpc-netty.jar $J/guava.jar \
  $J/perfmark-api.jar $J/gson.jar $J/error_prone_annotations.jar $J/jsr305.jar $J/geronimo-annotation-1.3-spec.jar \
  $J/netty-buffer.jar $J/netty-codec.jar $J/netty-codec-http.jar $J/netty-codec-http2.jar \
  $J/netty-codec-socks.jar $J/netty-common.jar $J/netty-handler.jar $J/netty-handler-proxy.jar \
  $J/netty-resolver.jar $J/netty-transport.jar)
export CLASSPATH=${CLASSPATH%:}
