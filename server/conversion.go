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
	resp, err := s.svc.LinkConversion(ctx, since, until)
	if err != nil {
		return nil, err
	}
	resp.Since, resp.Until = timestamppb.New(since), timestamppb.New(until)
	return resp, nil
}
