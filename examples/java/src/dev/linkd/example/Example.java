package dev.linkd.example;

import com.google.protobuf.Any;
import com.google.rpc.BadRequest;
import dev.linkd.v1.CreateLinkTokenRequest;
import dev.linkd.v1.CreateLinkTokenResponse;
import dev.linkd.v1.LinkServiceGrpc;
import dev.linkd.v1.ParseRedirectRequest;
import dev.linkd.v1.ParseRedirectResponse;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import java.util.concurrent.TimeUnit;

/**
 * Calls linkd over gRPC the way a JVM (Java or Kotlin) backend or Android app would: create a link
 * token, parse a Link redirect, and read the google.rpc.BadRequest linkd attaches to a bad request
 * (the grpc-status-details-bin trailer).
 *
 * <pre>LINKD_GRPC_ADDR=127.0.0.1:50051 LINKD_API_KEY=$(cat data/api-key) ./run.sh</pre>
 *
 * <p>It exits non-zero when linkd does not answer as documented, so CI can run it.
 */
public final class Example {
  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
  private static final Metadata.Key<byte[]> STATUS_DETAILS =
      Metadata.Key.of("grpc-status-details-bin", Metadata.BINARY_BYTE_MARSHALLER);

  public static void main(String[] args) throws Exception {
    String addr = System.getenv().getOrDefault("LINKD_GRPC_ADDR", "127.0.0.1:50051");
    String apiKey = System.getenv("LINKD_API_KEY");
    if (apiKey == null || apiKey.isEmpty()) {
      System.err.println("set LINKD_API_KEY (linkd stores a generated one in data/api-key)");
      System.exit(2);
    }
    NettyChannelBuilder builder = NettyChannelBuilder.forTarget(addr);
    if (!"1".equals(System.getenv("LINKD_TLS"))) {
      builder.usePlaintext(); // a loopback linkd; over a network, TLS
    }
    ManagedChannel managed = builder.build();
    try {
      // "authorization: Bearer <key>" on every call.
      Metadata headers = new Metadata();
      headers.put(AUTHORIZATION, "Bearer " + apiKey);
      Channel channel =
          ClientInterceptors.intercept(managed, MetadataUtils.newAttachHeadersInterceptor(headers));
      run(channel);
      System.out.println("ok");
    } finally {
      managed.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private static LinkServiceGrpc.LinkServiceBlockingStub stub(Channel channel) {
    return LinkServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS);
  }

  private static void run(Channel channel) throws Exception {
    // 1. A link token for the app's user; the app opens webview_url.
    CreateLinkTokenResponse created =
        stub(channel)
            .createLinkToken(CreateLinkTokenRequest.newBuilder().setClientUserId("java-user-1").build());
    check(!created.getLinkToken().getLinkToken().isEmpty(), "no link_token");
    System.out.println("link_token: " + created.getLinkToken().getLinkToken());
    System.out.println("webview_url: " + created.getLinkToken().getWebviewUrl());

    // 2. A redirect the webview intercepted, made sense of.
    String redirect =
        "plaidlink://exit?status=requires_credentials&error_code=INVALID_CREDENTIALS"
            + "&error_type=ITEM_ERROR&link_session_id=java-sess-1&institution_id=ins_109508";
    ParseRedirectResponse parsed =
        stub(channel).parseRedirect(ParseRedirectRequest.newBuilder().setUrl(redirect).build());
    System.out.println("parsed exit status: " + parsed.getRedirect().getExit().getStatus());
    check(
        parsed.getRedirect().getExit().getLinkSessionId().equals("java-sess-1"),
        "link_session_id not parsed");

    // 3. A bad request: INVALID_ARGUMENT, and a google.rpc.BadRequest naming the field.
    try {
      stub(channel)
          .parseRedirect(
              ParseRedirectRequest.newBuilder().setUrl("https://example.com/not-a-link-redirect").build());
      throw new IllegalStateException("unexpected: a bad redirect was accepted");
    } catch (StatusRuntimeException e) {
      check(e.getStatus().getCode() == Status.Code.INVALID_ARGUMENT, "code " + e.getStatus());
      byte[] bin = e.getTrailers() == null ? null : e.getTrailers().get(STATUS_DETAILS);
      check(bin != null, "no grpc-status-details-bin trailer");
      com.google.rpc.Status st = com.google.rpc.Status.parseFrom(bin);
      String field = null;
      for (Any detail : st.getDetailsList()) {
        if (detail.is(BadRequest.class)) {
          BadRequest br = detail.unpack(BadRequest.class);
          field = br.getFieldViolations(0).getField();
          System.out.println(
              "bad request: field " + field + " - " + br.getFieldViolations(0).getDescription());
        }
      }
      check("url".equals(field), "no BadRequest naming url: " + st);
    }
  }

  private static void check(boolean ok, String what) {
    if (!ok) {
      throw new IllegalStateException("unexpected: " + what);
    }
  }
}
