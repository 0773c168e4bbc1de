package linkd

// Error details: besides its code and message, a linkd error may carry a
// google.rpc.ErrorInfo in its status details (over REST: the "details" of
// the error body, "@type": "type.googleapis.com/google.rpc.ErrorInfo").
// Its Domain says whose reason it is; its Reason is a stable, machine-
// readable cause a client may branch on. The values below are the wire
// values: they never change. Every Reason linkd sets is in this table
// (TestReasons_Complete checks the code for others).
//
//	domain     reason           code            metadata
//	linkd      DUPLICATE_ITEM   ALREADY_EXISTS  item_id: the Item already linked (absent when
//	                                            another user linked it and an end user asks)
//	linkd      SESSIONS_PER_    RESOURCE_       (none): the link token created
//	           LINK_TOKEN       EXHAUSTED       MaxSessionsPerLinkToken sessions
//	plaid.com  Plaid's          Plaid's, mapped error_type, error_code, error_message,
//	           error_code       (plaid/)        display_message, request_id
//
// Invalid input comes with a google.rpc.BadRequest detail instead, whose
// field violation names the request field (proto names: "link_token").
const (
	// ErrorDomain is the ErrorInfo domain of linkd's own reasons.
	ErrorDomain = "linkd"
	// PlaidErrorDomain is the ErrorInfo domain of errors Plaid reported:
	// Reason is Plaid's error_code (ITEM_LOGIN_REQUIRED, ...), and Metadata
	// holds Plaid's error fields under the Metadata* keys.
	PlaidErrorDomain = "plaid.com"
)

// Reasons in ErrorDomain.
const (
	// ReasonDuplicateItem refuses a link that repeats an Item linkd keeps
	// (same institution and account; see -duplicate-items). Metadata
	// MetadataItemID names the existing Item when the caller may see it.
	ReasonDuplicateItem = "DUPLICATE_ITEM"
	// ReasonSessionsPerLinkToken refuses a new Link session of a link
	// token that created MaxSessionsPerLinkToken sessions already; the
	// caller creates a new link token (or waits RetryAfter, until this one
	// expires, which is the same).
	ReasonSessionsPerLinkToken = "SESSIONS_PER_LINK_TOKEN"
)

// Reasons lists every reason in ErrorDomain.
var Reasons = []string{ReasonDuplicateItem, ReasonSessionsPerLinkToken}

// Metadata keys of ErrorInfo details.
const (
	// MetadataItemID is the item_id a reason is about.
	MetadataItemID = "item_id"
	// Keys of PlaidErrorDomain details: Plaid's error fields.
	MetadataErrorType      = "error_type"
	MetadataErrorCode      = "error_code"
	MetadataErrorMessage   = "error_message"
	MetadataDisplayMessage = "display_message"
	MetadataRequestID      = "request_id"
)
