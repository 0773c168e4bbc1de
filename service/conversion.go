package service

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// conversionPage is how many sessions one store read of the report takes.
const conversionPage = 500

// LinkConversion reports the Link funnel over the sessions that started
// in [since, until), reading them a page at a time.
func (s *Service) LinkConversion(ctx context.Context, since, until time.Time) (*linkdv1.GetLinkConversionResponse, error) {
	c := newConversion()
	page := ""
	for {
		sessions, next, err := s.store.LinkSessions(ctx, since, until, page, conversionPage)
		if err != nil {
			return nil, err
		}
		for _, sess := range sessions {
			c.add(sess)
		}
		if next == "" {
			break
		}
		page = next
	}
	return c.report(), nil
}

// unknownKey counts exits without a status and abandons before any view:
// an empty map key reads as a bug in JSON.
const unknownKey = "UNKNOWN"

func orUnknown(k string) string { return or(k, unknownKey) }

// conversion counts the Link funnel.
type conversion struct {
	resp *linkdv1.GetLinkConversionResponse
}

func newConversion() *conversion {
	return &conversion{resp: &linkdv1.GetLinkConversionResponse{
		ExitsByStatus:    map[string]int64{},
		ExitsByErrorCode: map[string]int64{},
		AbandonedAtView:  map[string]int64{},
	}}
}

// add counts one session. A session converted when it has a HANDOFF event
// or a connected outcome; it exited when it has an exit outcome or an EXIT
// event (the outcome's status and error win), and was abandoned when it
// exited without converting, at the view of its last TRANSITION_VIEW.
func (c *conversion) add(sess *linkdv1.LinkSession) {
	resp := c.resp
	resp.Sessions++
	var opened, handoff, exited bool
	var exitStatus, errorCode, view string
	for _, e := range sess.GetEvents() {
		switch e.GetEventName() {
		case "OPEN":
			opened = true
		case "HANDOFF":
			handoff = true
		case "TRANSITION_VIEW":
			view = e.GetViewName()
		case "EXIT":
			exited, exitStatus, errorCode = true, e.GetExitStatus(), e.GetError().GetErrorCode()
		}
	}
	if x := sess.GetExit(); x != nil {
		exited, exitStatus, errorCode = true, x.GetStatus(), x.GetError().GetErrorCode()
	}
	converted := handoff || sess.GetConnected() != nil
	if opened {
		resp.SessionsOpened++
	}
	if converted {
		resp.SessionsConverted++
	}
	if exited {
		resp.ExitsByStatus[orUnknown(exitStatus)]++
		if errorCode != "" {
			resp.ExitsByErrorCode[errorCode]++
		}
		if !converted {
			resp.AbandonedAtView[orUnknown(view)]++
		}
	}
}

// MaxReportKeys bounds each map of the conversion report: the keys are
// what clients sent (exit statuses, error codes, view names), so without a
// bound one client could make every report as large as it likes.
const MaxReportKeys = 100

// otherKey gathers the counts of the keys past MaxReportKeys.
const otherKey = "OTHER"

// report returns the counts with the conversion rate, each map cut to
// MaxReportKeys keys: the largest counts stay, the rest fold into OTHER.
func (c *conversion) report() *linkdv1.GetLinkConversionResponse {
	if c.resp.Sessions > 0 {
		c.resp.ConversionRate = float64(c.resp.SessionsConverted) / float64(c.resp.Sessions)
	}
	for _, m := range []map[string]int64{c.resp.ExitsByStatus, c.resp.ExitsByErrorCode, c.resp.AbandonedAtView} {
		foldReportKeys(m, MaxReportKeys)
	}
	return c.resp
}

// foldReportKeys keeps the max-1 keys of m with the largest counts (ties
// by key) and folds every other key, OTHER included, into OTHER, when m
// has more than max keys.
func foldReportKeys(m map[string]int64, max int) {
	if len(m) <= max {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != otherKey {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	other := m[otherKey]
	for _, k := range keys[max-1:] {
		other += m[k]
		delete(m, k)
	}
	m[otherKey] = other
}
