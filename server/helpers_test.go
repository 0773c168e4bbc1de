package server

import (
	"context"

	"google.golang.org/grpc/metadata"
)

// metadataContext returns an incoming context carrying an authorization header.
func metadataContext(authorization string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", authorization))
}
