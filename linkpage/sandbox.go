package linkpage

import "strings"

// The sandbox's rules, after Plaid's sandbox test credentials
// (https://plaid.com/docs/sandbox/test-credentials/): user_good / pass_good
// logs in; user_good with the password error_<CODE> fails with that Item or
// institution error; anything else is INVALID_CREDENTIALS, which the user
// may retry.
const (
	SandboxUsername = "user_good"
	SandboxPassword = "pass_good"
	// MFAInstitutionID is the institution that asks for a one-time code
	// (Tartan Bank); SandboxCode is the code it accepts.
	MFAInstitutionID = "ins_109511"
	SandboxCode      = "1234"
)

// sandboxErrors are the error_<CODE> passwords the page knows, with their
// error_type. Each ends the session: the user can only exit.
var sandboxErrors = map[string]*Error{
	"ITEM_LOCKED": {Type: "ITEM_ERROR", Code: "ITEM_LOCKED", Message: "the account is locked",
		DisplayMessage: "Too many attempts. Please reset your password with your bank, then try again."},
	"ITEM_LOGIN_REQUIRED": {Type: "ITEM_ERROR", Code: "ITEM_LOGIN_REQUIRED", Message: "the login details of this item have changed (credentials, MFA, or required user action) and a user login is required to update this information",
		DisplayMessage: "Your bank needs you to log in again. Please visit your bank's website."},
	"ITEM_NOT_SUPPORTED": {Type: "ITEM_ERROR", Code: "ITEM_NOT_SUPPORTED", Message: "this account is currently not supported",
		DisplayMessage: "This account is not currently supported."},
	"USER_SETUP_REQUIRED": {Type: "ITEM_ERROR", Code: "USER_SETUP_REQUIRED", Message: "the account has not been fully set up",
		DisplayMessage: "Log in to your bank's website to finish setting up your account, then try again."},
	"NO_ACCOUNTS": {Type: "ITEM_ERROR", Code: "NO_ACCOUNTS", Message: "no valid accounts were found for this item",
		DisplayMessage: "No compatible accounts were found at this institution."},
	"INSTITUTION_DOWN": {Type: "INSTITUTION_ERROR", Code: "INSTITUTION_DOWN", Message: "this institution is not currently responding to this request",
		DisplayMessage: "This bank is experiencing technical difficulties. Please try again later."},
	"INSTITUTION_NOT_RESPONDING": {Type: "INSTITUTION_ERROR", Code: "INSTITUTION_NOT_RESPONDING", Message: "this institution is not currently responding to this request",
		DisplayMessage: "This bank is not responding. Please try again later."},
}

// checkCredentials returns nil for the sandbox's good login, a fatal
// *apiError for an error_<CODE> password, else a retryable
// INVALID_CREDENTIALS.
func checkCredentials(username, password string) error {
	if code, ok := strings.CutPrefix(password, "error_"); ok && username == SandboxUsername {
		if e, ok := sandboxErrors[code]; ok {
			copied := *e
			return &apiError{err: &copied, fatal: true}
		}
	}
	if username == SandboxUsername && password == SandboxPassword {
		return nil
	}
	return &apiError{err: &Error{Type: "ITEM_ERROR", Code: "INVALID_CREDENTIALS",
		Message:        "the provided credentials were not correct",
		DisplayMessage: "The provided credentials were not correct. Please try again."}}
}

// asksForCode reports whether the institution asks for a one-time code.
func asksForCode(institutionID string) bool { return institutionID == MFAInstitutionID }

// checkCode returns nil for the sandbox's code, else a retryable INVALID_MFA.
func checkCode(code string) error {
	if strings.TrimSpace(code) == SandboxCode {
		return nil
	}
	return &apiError{err: &Error{Type: "ITEM_ERROR", Code: "INVALID_MFA",
		Message:        "the provided MFA responses were not correct",
		DisplayMessage: "The code you entered was not correct. Please try again."}}
}
