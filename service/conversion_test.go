package service_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/service"
)

// TestService_LinkConversion_MapsBounded: exit statuses, error codes and
// view names are what clients sent; 250 distinct ones make no map of the
// report longer than MaxReportKeys, the largest counts stay and the rest
// are counted under OTHER.
func TestService_LinkConversion_MapsBounded(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	const distinct = 250
	exit := func(i int) *linkdv1.WebviewRedirect {
		return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Exit{Exit: &linkdv1.ExitResult{
			Status: fmt.Sprintf("status_%03d", i), LinkSessionId: fmt.Sprintf("sess-%d", i),
			Error: &linkdv1.LinkError{ErrorType: "ITEM_ERROR", ErrorCode: fmt.Sprintf("CODE_%03d", i)},
		}}}
	}
	view := func(i int, at time.Time) *linkdv1.WebviewRedirect {
		return &linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: &linkdv1.LinkEvent{
			EventName: "TRANSITION_VIEW", ViewName: fmt.Sprintf("VIEW_%03d", i), LinkSessionId: fmt.Sprintf("sess-%d", i), Timestamp: timestamppb.New(at),
		}}}
	}
	// Session 0's keys come three times, so they must stay named.
	for i := 0; i < distinct; i++ {
		for rep := 0; rep < 1+2*boolInt(i == 0); rep++ {
			id := fmt.Sprintf("sess-%d", i)
			if rep > 0 {
				id = fmt.Sprintf("sess-0-%d", rep)
			}
			at := start.Add(time.Duration(i*3+rep) * time.Second)
			for _, r := range []*linkdv1.WebviewRedirect{view(i, at), exit(i)} {
				if _, err := e.db.UpdateLinkSession(ctx, id, linkd.MergeRedirect("link-token-1", "user-1", r, at)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	report, err := e.svc.LinkConversion(ctx, start.Add(-time.Hour), start.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]map[string]int64{"exits_by_status": report.GetExitsByStatus(), "exits_by_error_code": report.GetExitsByErrorCode(), "abandoned_at_view": report.GetAbandonedAtView()} {
		if len(m) > service.MaxReportKeys {
			t.Errorf("%s has %d keys, want at most %d", name, len(m), service.MaxReportKeys)
		}
		var sum int64
		for _, n := range m {
			sum += n
		}
		if sum != distinct+2 {
			t.Errorf("%s counts %d sessions, want %d (none lost in folding)", name, sum, distinct+2)
		}
		if m["OTHER"] == 0 {
			t.Errorf("%s has no OTHER", name)
		}
	}
	if report.GetExitsByStatus()["status_000"] != 3 || report.GetExitsByErrorCode()["CODE_000"] != 3 || report.GetAbandonedAtView()["VIEW_000"] != 3 {
		t.Errorf("the largest counts were folded: %v", report)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
