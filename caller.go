package linkd

import "context"

// Caller is who made a request, as the server's authentication found it.
type Caller struct {
	// Service is true for a caller that presented an API key: a backend
	// that may act for any user.
	Service bool
	// UserID is the client_user_id of an end user who presented a user
	// token (its sub claim); empty for a service.
	UserID string
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the Caller in ctx, and false when there is none (an
// open method such as health, or a context that never passed
// authentication).
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// UserTokenVerifier verifies the bearer tokens end users present.
type UserTokenVerifier interface {
	// VerifyUserToken checks a token's signature and claims and returns its
	// subject, the user's client_user_id. It returns an EUNAUTHORIZED
	// *Error, never containing the token, when the token is not accepted,
	// and EUNAVAILABLE when the keys to check it cannot be fetched.
	VerifyUserToken(ctx context.Context, token string) (clientUserID string, err error)
}
