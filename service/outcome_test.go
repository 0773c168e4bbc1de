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
