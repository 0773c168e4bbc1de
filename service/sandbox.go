package service

import (
	"context"

	"github.com/linkd/linkd"
)

// errProduction refuses a sandbox call against Plaid production.
func (s *Service) errProduction(what string) error {
	if s.plaid.Environment() == linkd.PlaidProduction {
		return linkd.Errorf(linkd.EPRECONDITION, "%s cannot be used against Plaid production", what)
	}
	return nil
}

// CreateSandboxPublicToken mints a sandbox public token for an Item at an
// institution, with the default webhook URL, and returns it with Plaid's
// request_id; EPRECONDITION against Plaid production.
func (s *Service) CreateSandboxPublicToken(ctx context.Context, institutionID string, products []string) (publicToken, requestID string, err error) {
	if err := s.errProduction("sandbox public tokens"); err != nil {
		return "", "", err
	}
	return s.plaid.CreateSandboxPublicToken(ctx, institutionID, orSlice(products, s.defaults.Products), s.defaults.Webhook)
}

// ResetSandboxItemLogin resets a sandbox Item's login at Plaid and returns
// Plaid's request_id. The Item's status here is left alone: linkd learns
// of the reset the way it would of a real one.
func (s *Service) ResetSandboxItemLogin(ctx context.Context, itemID string) (string, error) {
	if err := s.errProduction("sandbox item resets"); err != nil {
		return "", err
	}
	token, err := s.store.AccessToken(ctx, itemID)
	if err != nil {
		return "", err
	}
	return s.plaid.ResetSandboxItemLogin(ctx, token)
}

// FireSandboxWebhook has Plaid's sandbox send an Item's webhook and returns
// Plaid's request_id.
func (s *Service) FireSandboxWebhook(ctx context.Context, itemID, webhookCode string) (string, error) {
	if err := s.errProduction("sandbox webhooks"); err != nil {
		return "", err
	}
	token, err := s.store.AccessToken(ctx, itemID)
	if err != nil {
		return "", err
	}
	return s.plaid.FireSandboxWebhook(ctx, token, webhookCode)
}
