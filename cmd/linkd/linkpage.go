package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/linkpage"
	"github.com/linkd/linkd/plaidemu"
)

// newEmulatorLinkPage returns linkd's Link page running its sessions
// against emu: beside linkd's API when linkd embeds the emulator, beside the
// emulator's API under `linkd emulator`.
func newEmulatorLinkPage(emu *plaidemu.Emulator, log *slog.Logger) *linkpage.Page {
	return linkpage.New(linkpage.Options{Backend: emulatorBackend{emu}, Logger: log.With("component", "linkpage")})
}

// emulatorBackend lets the Link page run sessions against the embedded
// emulator, converting its types and errors to the page's.
type emulatorBackend struct {
	emu *plaidemu.Emulator
}

var _ linkpage.HostedBackend = emulatorBackend{}

func (b emulatorBackend) LinkToken(linkToken string) (linkpage.Token, error) {
	info, err := b.emu.LinkTokenInfo(linkToken)
	if err != nil {
		return linkpage.Token{}, pageError(err)
	}
	return linkpage.Token{
		ClientName:       info.ClientName,
		RedirectURI:      info.RedirectURI,
		UpdateMode:       info.UpdateMode,
		InstitutionID:    info.InstitutionID,
		AccountIDs:       info.AccountIDs,
		AccountSelection: info.AccountSelection,
		Accounts:         pageAccounts(info.Accounts),

		Hosted:                info.Hosted,
		CompletionRedirectURI: info.CompletionRedirectURI,
	}, nil
}

func (b emulatorBackend) Institutions() []linkpage.Institution {
	var out []linkpage.Institution
	for _, ins := range plaidemu.Institutions() {
		out = append(out, linkpage.Institution{ID: ins.ID, Name: ins.Name, OAuth: ins.OAuth, OAuthPopup: ins.OAuthPopup, Accounts: pageAccounts(ins.Accounts)})
	}
	return out
}

// pageAccounts converts emulator accounts to the page's; nil stays nil.
func pageAccounts(accounts []plaidemu.Account) []linkpage.Account {
	if accounts == nil {
		return nil
	}
	out := make([]linkpage.Account, len(accounts))
	for i, a := range accounts {
		out[i] = linkpage.Account{ID: a.ID, Name: a.Name, Mask: a.Mask, Type: a.Type, Subtype: a.Subtype}
	}
	return out
}

func (b emulatorBackend) CreatePublicToken(linkToken, institutionID string, accountIDs []string) (string, error) {
	token, err := b.emu.CreatePublicToken(linkToken, institutionID, accountIDs)
	if err != nil {
		return "", pageError(err)
	}
	return token, nil
}

// FinishSession hands a session the page ran (Hosted Link or webview) to
// the emulator, which reports it as Plaid does (/link/token/get, LINK
// webhooks).
func (b emulatorBackend) FinishSession(linkToken, linkSessionID, publicToken, institutionID string, accountIDs []string, exitStatus string, events []linkpage.HostedEvent) error {
	evs := make([]plaidemu.LinkEvent, len(events))
	for i, e := range events {
		evs[i] = plaidemu.LinkEvent{Name: e.Name, Timestamp: e.Timestamp, Metadata: e.Metadata}
	}
	return pageError(b.emu.FinishLinkSession(linkToken, linkSessionID, publicToken, institutionID, accountIDs, exitStatus, evs))
}

// pageError converts an emulator error to the page's Plaid error; other
// errors pass unchanged (the page reports them as API_ERROR).
func pageError(err error) error {
	var perr *plaidemu.Error
	if !errors.As(err, &perr) {
		return err
	}
	return &linkpage.Error{Type: perr.Type, Code: perr.Code, Message: perr.Message, DisplayMessage: perr.DisplayMessage}
}

// emulatorSandbox does in the embedded emulator what only an emulator can:
// it completes Link sessions for CompleteSandboxLinkSession and sets Item
// states for SetEmulatorItemState.
type emulatorSandbox struct {
	emu *plaidemu.Emulator
}

var (
	_ linkd.SandboxLink   = emulatorSandbox{}
	_ linkd.EmulatorItems = emulatorSandbox{}
)

// CompleteLinkSession completes a session as the emulated user would; the
// public token stays in the emulator and reaches linkd only as Plaid's
// would, by webhook or /link/token/get.
func (b emulatorSandbox) CompleteLinkSession(_ context.Context, linkToken, institutionID, exitStatus string) (string, error) {
	id, _, err := b.emu.CompleteLinkSession(linkToken, institutionID, exitStatus)
	var perr *plaidemu.Error
	if errors.As(err, &perr) {
		field := "link_token"
		if perr.Code == "INVALID_INSTITUTION" {
			field = "institution_id"
		}
		return "", linkd.InvalidField(field, "%s: %s", perr.Code, perr.Message)
	}
	return id, err
}

// SetItemState puts the Item in state through the emulator's
// /emulator/item/set_state; the emulator's refusals (LOGIN_REPAIRED on an
// Item whose login is not broken) are EINVALID naming state, an unknown
// access token EPRECONDITION as Plaid's INVALID_ACCESS_TOKEN is.
func (b emulatorSandbox) SetItemState(_ context.Context, token linkd.AccessToken, state, reason string) error {
	err := b.emu.SetItemState(token.Reveal(), state, reason)
	var perr *plaidemu.Error
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &perr):
		return err
	case perr.Code == "INVALID_FIELD":
		return linkd.InvalidField("state", "%s", perr.Message)
	case perr.Code == "ITEM_NOT_FOUND":
		return linkd.Errorf(linkd.EPRECONDITION, "the emulator no longer has this Item: %s", perr.Message)
	}
	return linkd.Errorf(linkd.EPRECONDITION, "the emulator refused: %s: %s", perr.Code, perr.Message)
}
