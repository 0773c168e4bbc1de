package service

import (
	"errors"
	"fmt"
	"testing"

	"github.com/linkd/linkd"
)

// TestExchangeOutcome: each way an exchange ends has its metric word.
func TestExchangeOutcome(t *testing.T) {
	for _, tt := range []struct {
		stored bool
		err    error
		want   string
	}{
		{true, nil, ExchangeCreated},
		{false, nil, ExchangeRepeat},
		{false, &linkd.Error{Code: linkd.ECONFLICT, Reason: "DUPLICATE_ITEM"}, ExchangeDuplicate},
		{false, linkd.InvalidField("public_token", "public_token was already used"), ExchangeSpent},
		{false, fmt.Errorf("wrapped: %w", linkd.ErrPublicTokenSpent), ExchangeSpent},
		{false, fmt.Errorf("%w: %w", linkd.Errorf(linkd.EUNAVAILABLE, "retry"), linkd.ErrOutcomeUnknown), ExchangeUnknown},
		{false, linkd.Errorf(linkd.EUNAVAILABLE, "another process is exchanging it"), ExchangeUnknown},
		{false, errors.New("disk on fire"), ExchangeError},
	} {
		if got := exchangeOutcome(tt.stored, tt.err); got != tt.want {
			t.Errorf("exchangeOutcome(%v, %v) = %q, want %q", tt.stored, tt.err, got, tt.want)
		}
	}
}

// A LINK webhook refused with an answer a redelivery would meet again is
// acknowledged (definite); a transient failure is not, so Plaid retries.
func TestDefinite(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{linkd.Errorf(linkd.ECONFLICT, "session of another token"), true},
		{linkd.Errorf(linkd.EPRECONDITION, "session full"), true},
		{&linkd.Error{Code: linkd.ERATELIMIT, Reason: linkd.ReasonSessionsPerLinkToken}, true},
		{fmt.Errorf("wrapped: %w", &linkd.Error{Code: linkd.ERATELIMIT, Reason: linkd.ReasonSessionsPerLinkToken}), true},
		{&linkd.Error{Code: linkd.ERATELIMIT}, false},
		{linkd.Errorf(linkd.EUNAVAILABLE, "database down"), false},
		{errors.New("plain"), false},
	} {
		if got := definite(tt.err); got != tt.want {
			t.Errorf("definite(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
