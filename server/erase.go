package server

import (
	"context"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// DeleteUserData erases an end user (services only: see methodAccess):
// its Items at Plaid, then every record of it here.
func (s *Server) DeleteUserData(ctx context.Context, req *linkdv1.DeleteUserDataRequest) (*linkdv1.DeleteUserDataResponse, error) {
	if err := checkClientUserID("client_user_id", req.GetClientUserId()); err != nil {
		return nil, err
	}
	e, err := s.svc.DeleteUserData(ctx, req.GetClientUserId())
	if err != nil {
		return nil, err
	}
	return &linkdv1.DeleteUserDataResponse{
		ClientUserId:            req.GetClientUserId(),
		ItemsRemovedAtPlaid:     int32(e.RemovedAtPlaid),
		ItemsAlreadyGoneAtPlaid: int32(e.AlreadyGone),
		ItemsDeleted:            int32(e.Deleted.Items),
		LinkSessionsDeleted:     int32(e.Deleted.Sessions),
		LinkTokensDeleted:       int32(e.Deleted.LinkTokens),
		WebhooksDeleted:         int32(e.Deleted.Webhooks),
	}, nil
}
