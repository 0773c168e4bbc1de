package server

import (
	"net/http"

	"context"
	"errors"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/linkd/linkd"
)

// grpcCodes maps each linkd error code to its gRPC code: the one place where
// that decision is made. The gateway turns gRPC codes into HTTP statuses
// (InvalidArgument 400, Unauthenticated 401, NotFound 404, ...).
var grpcCodes = map[string]codes.Code{
	linkd.EINVALID:      codes.InvalidArgument,
	linkd.ENOTFOUND:     codes.NotFound,
	linkd.ECONFLICT:     codes.AlreadyExists,
	linkd.EUNAUTHORIZED: codes.Unauthenticated,
	linkd.EFORBIDDEN:    codes.PermissionDenied,
	linkd.EPRECONDITION: codes.FailedPrecondition,
	linkd.ERATELIMIT:    codes.ResourceExhausted,
	linkd.EUNAVAILABLE:  codes.Unavailable,
	linkd.EINTERNAL:     codes.Internal,
}

// ErrorInfo domains: errors Plaid reported, and linkd's own reasons.
const (
	plaidErrorDomain = linkd.PlaidErrorDomain
	linkdErrorDomain = linkd.ErrorDomain
)

// toStatus turns an error returned by a handler into a gRPC status. A
// *linkd.Error keeps its message, with a BadRequest detail naming the field,
// an ErrorInfo detail carrying Plaid's error, or one carrying linkd's Reason
// (domain "linkd"); anything else is logged in full and reaches the caller
// as a generic Internal error.
func toStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	var e *linkd.Error
	if !errors.As(err, &e) || e.Code == linkd.EINTERNAL {
		log.ErrorContext(ctx, "internal error", "method", method, "err", err)
		return status.Error(codes.Internal, "internal error")
	}
	code, ok := grpcCodes[e.Code]
	if !ok {
		code = codes.Unknown
	}
	st := status.New(code, e.Message)
	if e.Field != "" {
		st = withDetail(ctx, log, st, &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: e.Field, Description: e.Message}},
		})
	}
	if p := e.Plaid; p != nil {
		st = withDetail(ctx, log, st, &errdetails.ErrorInfo{
			Reason: p.ErrorCode,
			Domain: plaidErrorDomain,
			Metadata: map[string]string{
				"error_type":      p.ErrorType,
				"error_code":      p.ErrorCode,
				"error_message":   p.ErrorMessage,
				"display_message": p.DisplayMessage,
				"request_id":      p.RequestID,
			},
		})
	}
	if e.RetryAfter > 0 {
		st = withDetail(ctx, log, st, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	if e.Reason != "" {
		st = withDetail(ctx, log, st, &errdetails.ErrorInfo{Reason: e.Reason, Domain: linkdErrorDomain, Metadata: e.Metadata})
	}
	return st.Err()
}

// withDetail attaches a detail, or keeps the status without it (logging why)
// when it cannot be encoded, which only a bug can cause.
func withDetail(ctx context.Context, log *slog.Logger, st *status.Status, detail protoadapt.MessageV1) *status.Status {
	with, err := st.WithDetails(detail)
	if err != nil {
		log.ErrorContext(ctx, "cannot attach error detail", "err", err)
		return st
	}
	return with
}

// writeHTTPError answers a request served outside the gateway (the
// webhook, the body limit) the way the gateway answers an RPC's error:
// err mapped by toStatus, the HTTP status of its gRPC code (or httpStatus
// when not zero: 413 has no gRPC code), and the gateway's JSON body
// {"code", "message", "details"}.
func writeHTTPError(w http.ResponseWriter, r *http.Request, log *slog.Logger, httpStatus int, err error) {
	st := status.Convert(toStatus(r.Context(), log, r.URL.Path, err))
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(st.Code())
	}
	body, merr := protojson.MarshalOptions{UseProtoNames: true}.Marshal(st.Proto())
	if merr != nil {
		body = []byte(`{"code":13,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	w.Write(body)
}
