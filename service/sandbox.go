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
// institution, with the default webhook URL and the sandbox test login,
// and returns it with Plaid's request_id; EPRECONDITION against Plaid
// production.
func (s *Service) CreateSandboxPublicToken(ctx context.Context, institutionID string, products []string, login linkd.SandboxLogin) (publicToken, requestID string, err error) {
	if err := s.errProduction("sandbox public tokens"); err != nil {
		return "", "", err
	}
	return s.plaid.CreateSandboxPublicToken(ctx, institutionID, orSlice(products, s.defaults.Products), s.defaults.Webhook, login)
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
// Plaid's request_id. EINVALID naming webhook_code or webhook_type for a
// webhook Plaid's sandbox does not fire (linkd.CheckSandboxWebhook), before
// calling Plaid.
func (s *Service) FireSandboxWebhook(ctx context.Context, itemID, webhookType, webhookCode string) (string, error) {
	if err := s.errProduction("sandbox webhooks"); err != nil {
		return "", err
	}
	if err := linkd.CheckSandboxWebhook(webhookCode, webhookType); err != nil {
		return "", err
	}
	token, err := s.store.AccessToken(ctx, itemID)
	if err != nil {
		return "", err
	}
	return s.plaid.FireSandboxWebhook(ctx, token, webhookType, webhookCode)
}

// SetSandboxVerificationStatus has Plaid's sandbox end an account's
// automated micro-deposit verification with status, which sends the Item
// the AUTH webhook, and returns Plaid's request_id. EINVALID naming
// account_id or verification_status before calling Plaid.
func (s *Service) SetSandboxVerificationStatus(ctx context.Context, itemID, accountID, status string) (string, error) {
	if err := s.errProduction("sandbox verification statuses"); err != nil {
		return "", err
	}
	if err := linkd.CheckSandboxVerificationStatus(accountID, status); err != nil {
		return "", err
	}
	token, err := s.store.AccessToken(ctx, itemID)
	if err != nil {
		return "", err
	}
	return s.plaid.SetSandboxVerificationStatus(ctx, token, accountID, status)
}

// SetEmulatorItemState has linkd's embedded emulator put an Item in state
// (with reason, for PENDING_DISCONNECT), which sends the Item's webhook.
// EPRECONDITION when linkd talks to Plaid rather than to its emulator;
// EINVALID naming state or reason.
func (s *Service) SetEmulatorItemState(ctx context.Context, itemID, state, reason string) error {
	if s.emulatorItems == nil {
		return linkd.Errorf(linkd.EPRECONDITION, "emulator Item states are set only by linkd's embedded Plaid emulator; Plaid's sandbox cannot produce them")
	}
	if err := linkd.CheckEmulatorItemState(state, reason); err != nil {
		return err
	}
	token, err := s.store.AccessToken(ctx, itemID)
	if err != nil {
		return err
	}
	return s.emulatorItems.SetItemState(ctx, token, state, reason)
}
