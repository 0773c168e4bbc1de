package server

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// defaultConversionWindow is the window GetLinkConversion reports on when
// the request leaves since unset.
const defaultConversionWindow = 30 * 24 * time.Hour

// GetLinkConversion reports the Link funnel over the sessions that started
// in [since, until).
func (s *Server) GetLinkConversion(ctx context.Context, req *linkdv1.GetLinkConversionRequest) (*linkdv1.GetLinkConversionResponse, error) {
	until := s.now()
	if req.GetUntil() != nil {
		if err := req.GetUntil().CheckValid(); err != nil {
			return nil, linkd.InvalidField("until", "until is not a valid timestamp")
		}
		until = req.GetUntil().AsTime()
	}
	since := until.Add(-defaultConversionWindow)
	if req.GetSince() != nil {
		if err := req.GetSince().CheckValid(); err != nil {
			return nil, linkd.InvalidField("since", "since is not a valid timestamp")
		}
		since = req.GetSince().AsTime()
	}
	if !since.Before(until) {
		return nil, linkd.InvalidField("since", "since must be before until")
	}
	sessions, err := s.store.LinkSessions(ctx, since, until)
	if err != nil {
		return nil, err
	}
	resp := conversion(sessions)
	resp.Since, resp.Until = timestamppb.New(since), timestamppb.New(until)
	return resp, nil
}

// unknownKey counts exits without a status and abandons before any view:
// an empty map key reads as a bug in JSON.
const unknownKey = "UNKNOWN"

func orUnknown(k string) string { return or(k, unknownKey) }

// conversion counts the funnel over sessions. A session converted when it
// has a HANDOFF event or a connected outcome; it exited when it has an
// exit outcome or an EXIT event (the outcome's status and error win), and
// was abandoned when it exited without converting, at the view of its last
// TRANSITION_VIEW.
func conversion(sessions []*linkdv1.LinkSession) *linkdv1.GetLinkConversionResponse {
	resp := &linkdv1.GetLinkConversionResponse{
		ExitsByStatus:    map[string]int64{},
		ExitsByErrorCode: map[string]int64{},
		AbandonedAtView:  map[string]int64{},
	}
	for _, sess := range sessions {
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
	if resp.Sessions > 0 {
		resp.ConversionRate = float64(resp.SessionsConverted) / float64(resp.Sessions)
	}
	return resp
}
