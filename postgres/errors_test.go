package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/linkd/linkd"
)

// TestWrap: how a failure from the driver or the server becomes a linkd
// code, and that the caller's message never carries the cause.
func TestWrap(t *testing.T) {
	pg := func(code string) error {
		return &pgconn.PgError{Severity: "ERROR", Code: code, Message: "m", Detail: "Key (x)=(public-sandbox-secret) already exists."}
	}
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"DiskFull", pg("53100"), linkd.EUNAVAILABLE},
		{"TooManyConnections", pg("53300"), linkd.EUNAVAILABLE},
		{"AdminShutdown", pg("57P01"), linkd.EUNAVAILABLE},
		{"CrashShutdown", pg("57P02"), linkd.EUNAVAILABLE},
		{"CannotConnectNow", pg("57P03"), linkd.EUNAVAILABLE},
		{"ConnectionFailure", pg("08006"), linkd.EUNAVAILABLE},
		{"SerializationRetriesExhausted", pg("40001"), linkd.EUNAVAILABLE},
		{"Deadlock", pg("40P01"), linkd.EUNAVAILABLE},
		{"UniqueViolation", pg("23505"), linkd.ECONFLICT},
		{"UndefinedTable", pg("42P01"), linkd.EINTERNAL},
		{"Canceled", fmt.Errorf("query: %w", context.Canceled), linkd.EUNAVAILABLE},
		{"Deadline", context.DeadlineExceeded, linkd.EUNAVAILABLE},
		{"Network", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, linkd.EUNAVAILABLE},
		{"EOF", fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), linkd.EUNAVAILABLE},
		{"ConnClosed", fmt.Errorf("x: %w", pgconn.ErrConnClosed), linkd.EUNAVAILABLE},
		{"Other", errors.New("something odd"), linkd.EINTERNAL},
		{"LinkdError", linkd.Errorf(linkd.ENOTFOUND, "item not found"), linkd.ENOTFOUND},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := wrap("op", tt.err)
			if got := linkd.ErrorCode(err); got != tt.want {
				t.Fatalf("wrap(%v) code %q, want %q", tt.err, got, tt.want)
			}
			if !errors.Is(err, tt.err) {
				t.Error("the cause is not in the chain, for the logs")
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(linkd.ErrorMessage(err), "secret") {
				t.Errorf("error %q carries the DETAIL of a PgError", err)
			}
		})
	}
	if wrap("op", nil) != nil {
		t.Fatal("wrap(nil) is not nil")
	}
}
