package service

import (
	"context"
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

// report returns the counts with the conversion rate.
func (c *conversion) report() *linkdv1.GetLinkConversionResponse {
	if c.resp.Sessions > 0 {
		c.resp.ConversionRate = float64(c.resp.SessionsConverted) / float64(c.resp.Sessions)
	}
	return c.resp
}
