package client

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	"github.com/linkd/linkd"
)

// IsDuplicateItem reports whether err is linkd refusing a link that repeats
// an Item it keeps (reason DUPLICATE_ITEM), and returns that Item's id. The
// id is empty when another user linked it and the caller is an end user,
// who may not learn which Item it is.
func IsDuplicateItem(err error) (itemID string, ok bool) {
	info := errorInfo(err, linkd.ErrorDomain)
	if info == nil || info.GetReason() != linkd.ReasonDuplicateItem {
		return "", false
	}
	return info.GetMetadata()[linkd.MetadataItemID], true
}

// FieldViolations returns the request fields an INVALID_ARGUMENT error
// names (proto field paths: "url", "accounts[1].meta.number"), with why;
// nil for any other error.
func FieldViolations(err error) []*errdetails.BadRequest_FieldViolation {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var out []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			out = append(out, br.GetFieldViolations()...)
		}
	}
	return out
}

// PlaidError returns the error Plaid reported, when err carries one
// (ITEM_LOGIN_REQUIRED, INVALID_PUBLIC_TOKEN, ...), and false otherwise.
// HTTPStatus is not sent and stays 0.
func PlaidError(err error) (*linkd.PlaidError, bool) {
	info := errorInfo(err, linkd.PlaidErrorDomain)
	if info == nil {
		return nil, false
	}
	md := info.GetMetadata()
	code := md[linkd.MetadataErrorCode]
	if code == "" {
		code = info.GetReason()
	}
	return &linkd.PlaidError{
		ErrorType:      md[linkd.MetadataErrorType],
		ErrorCode:      code,
		ErrorMessage:   md[linkd.MetadataErrorMessage],
		DisplayMessage: md[linkd.MetadataDisplayMessage],
		RequestID:      md[linkd.MetadataRequestID],
	}, true
}

// errorInfo returns err's first ErrorInfo detail in domain, or nil.
func errorInfo(err error, domain string) *errdetails.ErrorInfo {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == domain {
			return info
		}
	}
	return nil
}
