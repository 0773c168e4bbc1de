# linkd's image: a static binary (CGO_ENABLED=0) on distroless, as a
# non-root user, with its state in the /data volume only. Run it with a
# read-only root filesystem:
#
#   docker build -t linkd .
#   docker run --read-only -v linkd-data:/data -p 50051:50051 -p 8080:8080 \
#     -e LINKD_API_KEYS -e LINKD_MASTER_KEYS -e PLAID_CLIENT_ID -e PLAID_SECRET linkd
#
# make deploytest checks the same conditions without a container engine.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The commit and its time are stamped when .git is in the build context
# (linkd version prints them); without it the build still succeeds.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/linkd ./cmd/linkd \
 && /out/linkd version \
 && mkdir -p /out/data

# static-debian12: CA certificates (for Plaid and a JWKS URL) and tzdata, no
# shell, no libc. :nonroot runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/linkd /linkd
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV LINKD_DATA_DIR=/data \
    LINKD_GRPC_ADDR=:50051 \
    LINKD_HTTP_ADDR=:8080 \
    LINKD_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 50051 8080
ENTRYPOINT ["/linkd"]
