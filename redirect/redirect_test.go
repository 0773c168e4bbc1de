package redirect_test

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
	"github.com/linkd/linkd/redirect"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var update = flag.Bool("update", false, "rewrite testdata/*.want from the parser's output")

// The examples of Plaid's "Link Webview SDK" page
// (/work/shared/seeds/plaid-link-webview-sdk.txt), verbatim: the numbered
// lines of each are joined into one URL, line numbers and leading spaces
// removed.
const (
	// The connected example. Its accounts JSON is wrapped in single quotes
	// and is not percent-encoded.
	docConnected = `plaidlink://connected?public_token=public-sandbox-fb7cca4a-82e6-4707&institution_id=ins_3&institution_name=Chase&accounts='[{"_id":"QPO8Jo8vdDHMepg41PBwckXm4KdK1yUdmXOwK", "meta": {"name":"Plaid Savings", "number": "0000"}, "subtype": "checking", "type": "depository" }]'&link_session_id=79e772be-547d-4c9c-8b76-4ac4ed4c441a`

	// The exit example. It sends error_display_message, not the
	// display_message its field list documents.
	docExit = `plaidlink://exit?status=requires_credentials&error_type=ITEM_ERROR&error_code=ITEM_LOGIN_REQUIRED&error_display_message=The%20credentials%20were%20not%20correct.%20Please%20try%20again.&error_message=the%20credentials%20were%20not%20correct&institution_id=ins_3&institution_name=Chase&link_session_id=79e772be-547d-4c9c-8b76-4ac4ed4c441a&request_id=m8MDnv9okwxFNBV`

	// The event example. "&event_name=..." comes before the "?", and
	// exit_status, mfa_type and request_id have no value.
	docEvent = `plaidlink://event&event_name=SELECT_INSTITUTION?error_type=ITEM_ERROR&error_code=ITEM_LOGIN_REQUIRED&error_message=the%20credentials%20were%20not%20correct&exit_status&institution_id=ins_55&institution_name=HSBC&institution_search_query=h&mfa_type&view_name=ERROR&request_id&link_session_id=821f45a8-854a-4dbb-8e5f-73f75350e7e7&timestamp=2018-10-05T15%3A22%3A50.542Z`

	// The create example: the URL that opens Link, not a redirect.
	docCreate = `https://cdn.plaid.com/link/v2/stable/link.html?isWebview=true&token="GENERATED_LINK_TOKEN"&receivedRedirectUri=`

	// The Link initialization URL and the bare scheme, the page's other URLs.
	docLinkHTML = `https://cdn.plaid.com/link/v2/stable/link.html`
	docScheme   = `plaidlink://`

	// The "accounts schema example", pretty-printed. Its meta objects end
	// in trailing commas, and "..." stands for more accounts.
	docAccounts = `"accounts": [
{
"_id": "ygPnJweommTWNr9doD6ZfGR6GGVQy7fyREmWy",
"meta": {
"name": "Plaid Checking",
"number": "0000",
},
"type": "depository",
"subtype": "checking",
"verification_status": ""
},
{
"_id": "9ebEyJAl33FRrZNLBG8ECxD9xxpwWnuRNZ1V4",
"meta": {
"name": "Plaid Saving",
"number": "1111",
},
"type": "depository",
"subtype": "savings"
}
...
]`
)

const (
	tok    = "public-sandbox-fb7cca4a-82e6-4707" // the doc's public token
	secret = "public-sandbox-must-not-leak"      // a token no error may echo
	conn   = "plaidlink://connected?public_token=" + tok
)

var (
	// docAccountsValue is docAccounts as the value of an accounts parameter.
	docAccountsValue = strings.TrimPrefix(docAccounts, `"accounts": `)
	// docAccountsNoEllipsis drops the "..." line, which elides accounts and
	// is not data.
	docAccountsNoEllipsis = strings.Replace(docAccountsValue, "}\n...\n]", "}\n]", 1)

	docEventTime = timestamppb.New(time.Date(2018, 10, 5, 15, 22, 50, 542e6, time.UTC))
)

// withAccounts returns a connected redirect URL carrying accounts,
// percent-encoded as a careful client would.
func withAccounts(accounts string) string {
	return conn + "&accounts=" + url.QueryEscape(accounts)
}

func connected(c *linkdv1.ConnectedResult, params ...string) *linkdv1.WebviewRedirect {
	return withParams(&linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Connected{Connected: c}}, params...)
}

func exit(e *linkdv1.ExitResult, params ...string) *linkdv1.WebviewRedirect {
	return withParams(&linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Exit{Exit: e}}, params...)
}

func event(e *linkdv1.LinkEvent, params ...string) *linkdv1.WebviewRedirect {
	return withParams(&linkdv1.WebviewRedirect{Result: &linkdv1.WebviewRedirect_Event{Event: e}}, params...)
}

// withParams sets unrecognized_params from key, value pairs.
func withParams(r *linkdv1.WebviewRedirect, kv ...string) *linkdv1.WebviewRedirect {
	for i := 0; i+1 < len(kv); i += 2 {
		if r.UnrecognizedParams == nil {
			r.UnrecognizedParams = map[string]string{}
		}
		r.UnrecognizedParams[kv[i]] = kv[i+1]
	}
	return r
}

// accounts is a connected result holding only the doc's token and accts.
func accounts(accts ...*linkdv1.Account) *linkdv1.WebviewRedirect {
	return connected(&linkdv1.ConnectedResult{PublicToken: tok, Accounts: accts})
}

type parseTest struct {
	name  string
	in    string
	want  *linkdv1.WebviewRedirect // nil when Parse must fail
	field string                   // the failure's Field, when want is nil
}

var parseTests = []parseTest{
	// Plaid's examples, verbatim.
	{
		name: "DocConnected",
		in:   docConnected,
		want: connected(&linkdv1.ConnectedResult{
			PublicToken:     tok,
			InstitutionId:   "ins_3",
			InstitutionName: "Chase",
			Accounts: []*linkdv1.Account{{
				Id: "QPO8Jo8vdDHMepg41PBwckXm4KdK1yUdmXOwK", Name: "Plaid Savings", Mask: "0000",
				Type: "depository", Subtype: "checking", // "Savings" that is checking: as Plaid wrote it
			}},
			LinkSessionId: "79e772be-547d-4c9c-8b76-4ac4ed4c441a",
		}),
	},
	{
		name: "DocExit",
		in:   docExit,
		want: exit(&linkdv1.ExitResult{
			Status: "requires_credentials",
			Error: &linkdv1.LinkError{
				ErrorType:      "ITEM_ERROR",
				ErrorCode:      "ITEM_LOGIN_REQUIRED",
				ErrorMessage:   "the credentials were not correct",
				DisplayMessage: "The credentials were not correct. Please try again.",
			},
			InstitutionId:   "ins_3",
			InstitutionName: "Chase",
			LinkSessionId:   "79e772be-547d-4c9c-8b76-4ac4ed4c441a",
			RequestId:       "m8MDnv9okwxFNBV",
		}),
	},
	{
		name: "DocEvent",
		in:   docEvent,
		want: event(&linkdv1.LinkEvent{
			EventName: "SELECT_INSTITUTION",
			Error: &linkdv1.LinkError{
				ErrorType:    "ITEM_ERROR",
				ErrorCode:    "ITEM_LOGIN_REQUIRED",
				ErrorMessage: "the credentials were not correct",
			},
			InstitutionId:          "ins_55",
			InstitutionName:        "HSBC",
			InstitutionSearchQuery: "h",
			ViewName:               "ERROR",
			LinkSessionId:          "821f45a8-854a-4dbb-8e5f-73f75350e7e7",
			Timestamp:              docEventTime,
		}),
	},
	// Policy: trailing commas in accounts are accepted. Link builds the
	// parameter with JSON.stringify, which never writes one, but Plaid's
	// own example does, and a comma before '}' or ']' can mean nothing else.
	{
		name: "DocAccounts",
		in:   withAccounts(docAccountsNoEllipsis),
		want: accounts(
			&linkdv1.Account{Id: "ygPnJweommTWNr9doD6ZfGR6GGVQy7fyREmWy", Name: "Plaid Checking", Mask: "0000", Type: "depository", Subtype: "checking"},
			&linkdv1.Account{Id: "9ebEyJAl33FRrZNLBG8ECxD9xxpwWnuRNZ1V4", Name: "Plaid Saving", Mask: "1111", Type: "depository", Subtype: "savings"},
		),
	},
	// Policy: the example's "..." elides accounts; it is not JSON and is
	// not guessed at.
	{name: "ErrDocAccountsEllipsis", in: withAccounts(docAccountsValue), field: "accounts"},
	// The same example sent raw, as Plaid sends the connected example: the
	// newlines make it no URL at all.
	{name: "ErrDocAccountsRaw", in: conn + "&accounts=" + docAccountsNoEllipsis, field: "url"},
	{name: "ErrDocCreate", in: docCreate, field: "url"},
	{name: "ErrDocLinkHTML", in: docLinkHTML, field: "url"},
	{name: "ErrDocScheme", in: docScheme, field: "url"},

	// Scheme and host: case-insensitive; nothing else is a redirect.
	{name: "HostCase", in: "plaidlink://Connected?public_token=" + tok, want: accounts()},
	{name: "SchemeAndHostUpper", in: "PLAIDLINK://EXIT?status=requires_code", want: exit(&linkdv1.ExitResult{Status: "requires_code"})},
	{name: "BareExit", in: "plaidlink://exit", want: exit(&linkdv1.ExitResult{})},
	{name: "EmptyQuery", in: "plaidlink://exit?", want: exit(&linkdv1.ExitResult{})},
	// Policy: one '/' before the query is tolerated.
	{name: "SlashBeforeQuery", in: "plaidlink://exit/?status=requires_code", want: exit(&linkdv1.ExitResult{Status: "requires_code"})},
	{name: "ErrEmpty", in: "", field: "url"},
	{name: "ErrSchemeHTTPS", in: "https://connected?public_token=" + tok, field: "url"},
	{name: "ErrSchemeNoSlashes", in: "plaidlink:connected?public_token=" + tok, field: "url"},
	{name: "ErrSchemeOneSlash", in: "plaidlink:/connected?public_token=" + tok, field: "url"},
	{name: "ErrSchemeSpace", in: " plaidlink://exit", field: "url"},
	{name: "ErrHostUnknown", in: "plaidlink://success?public_token=" + tok, field: "url"},
	{name: "ErrHostPort", in: "plaidlink://exit:80?status=x", field: "url"},
	{name: "ErrHostUserinfo", in: "plaidlink://user@exit?status=x", field: "url"},
	{name: "ErrHostEncoded", in: "plaidlink://%65xit?status=x", field: "url"},
	{name: "ErrPath", in: "plaidlink://exit/more?status=x", field: "url"},
	{name: "ErrFragment", in: "plaidlink://exit#status=x", field: "url"},
	{name: "ErrControlChar", in: "plaidlink://exit?status=requires_code\n", field: "url"},
	{name: "ErrDEL", in: "plaidlink://exit?status=a\x7f", field: "url"},

	// Length: MaxURLLength bytes is fine, one more is not.
	{
		name: "MaxURLLength",
		in:   "plaidlink://exit?status=" + strings.Repeat("a", redirect.MaxURLLength-len("plaidlink://exit?status=")),
		want: exit(&linkdv1.ExitResult{Status: strings.Repeat("a", redirect.MaxURLLength-len("plaidlink://exit?status="))}),
	},
	{name: "ErrTooLong", in: "plaidlink://exit?status=" + strings.Repeat("a", redirect.MaxURLLength-len("plaidlink://exit?status=")+1), field: "url"},

	// Unknown keys: MaxUnrecognizedParams are kept, one more is refused.
	{
		name: "MaxUnrecognizedParams",
		in:   "plaidlink://exit?status=x" + manyParams(redirect.MaxUnrecognizedParams),
		want: withUnrecognized(exit(&linkdv1.ExitResult{Status: "x"}), manyParamsMap(redirect.MaxUnrecognizedParams)),
	},
	{name: "ErrTooManyUnrecognizedParams", in: "plaidlink://exit?status=x" + manyParams(redirect.MaxUnrecognizedParams+1), field: "url"},

	// The event example's form: parameters between host and '?'.
	{name: "AmpersandFormOnly", in: "plaidlink://event&event_name=OPEN", want: event(&linkdv1.LinkEvent{EventName: "OPEN"})},
	{name: "AmpersandFormExit", in: "plaidlink://exit&status=requires_code?request_id=r1", want: exit(&linkdv1.ExitResult{Status: "requires_code", RequestId: "r1"})},
	{name: "AmpersandFormRepeatSame", in: "plaidlink://event&event_name=OPEN?event_name=OPEN", want: event(&linkdv1.LinkEvent{EventName: "OPEN"})},
	{name: "ErrAmpersandFormConflict", in: "plaidlink://event&event_name=OPEN?event_name=EXIT", field: "event_name"},
	// Only the first '?' separates; a later one is data, as in net/url.
	{name: "QuestionMarkInValue", in: "plaidlink://exit?error_message=why?&error_type=X", want: exit(&linkdv1.ExitResult{Error: &linkdv1.LinkError{ErrorMessage: "why?", ErrorType: "X"}})},

	// Encoding: '+' and %20 are spaces; %2B is a plus; hex is any case.
	{name: "PlusIsSpace", in: "plaidlink://exit?error_message=the+credentials+were+not+correct", want: exit(&linkdv1.ExitResult{Error: &linkdv1.LinkError{ErrorMessage: "the credentials were not correct"}})},
	{name: "Percent20IsSpace", in: "plaidlink://exit?institution_name=Wells%20Fargo", want: exit(&linkdv1.ExitResult{InstitutionName: "Wells Fargo"})},
	{name: "Percent2BIsPlus", in: "plaidlink://exit?institution_name=A%2bB", want: exit(&linkdv1.ExitResult{InstitutionName: "A+B"})},
	{name: "EncodedKey", in: "plaidlink://exit?request%5Fid=r1", want: exit(&linkdv1.ExitResult{RequestId: "r1"})},
	{name: "UTF8", in: "plaidlink://exit?institution_name=Cr%C3%A9dit+Agricole", want: exit(&linkdv1.ExitResult{InstitutionName: "Crédit Agricole"})},
	{name: "RawUTF8", in: "plaidlink://exit?institution_name=Crédit", want: exit(&linkdv1.ExitResult{InstitutionName: "Crédit"})},
	// Policy: '#' and ';' are data. Link does not encode its JSON, so an
	// account named "Checking #2" arrives with a raw '#'.
	{name: "HashIsData", in: "plaidlink://exit?institution_name=Bank#1&status=requires_code", want: exit(&linkdv1.ExitResult{InstitutionName: "Bank#1", Status: "requires_code"})},
	{name: "SemicolonIsData", in: "plaidlink://exit?institution_name=A;B", want: exit(&linkdv1.ExitResult{InstitutionName: "A;B"})},
	{name: "ErrPercentValue", in: "plaidlink://exit?status=%ZZ", field: "status"},
	{name: "ErrPercentTruncated", in: "plaidlink://exit?status=abc%2", field: "status"},
	{name: "ErrPercentAlone", in: "plaidlink://exit?institution_name=100%", field: "institution_name"},
	{name: "ErrPercentUnknownKey", in: "plaidlink://exit?foo=%G0", field: "foo"},
	// Policy: Link sends accounts unencoded (the doc's example), so in
	// accounts, and only there, a '%' that starts no escape is a literal '%'.
	// Plaid's sandbox has an account named "Plaid Gold Standard 0% Interest
	// Checking".
	{
		name: "DocConnectedPercentInName",
		in:   strings.Replace(docConnected, `"Plaid Savings"`, `"Plaid Gold Standard 0% Interest Checking"`, 1),
		want: connected(&linkdv1.ConnectedResult{
			PublicToken: tok, InstitutionId: "ins_3", InstitutionName: "Chase", LinkSessionId: "79e772be-547d-4c9c-8b76-4ac4ed4c441a",
			Accounts: []*linkdv1.Account{{Id: "QPO8Jo8vdDHMepg41PBwckXm4KdK1yUdmXOwK", Name: "Plaid Gold Standard 0% Interest Checking", Mask: "0000", Type: "depository", Subtype: "checking"}},
		}),
	},
	{name: "AccountsRawPercentAtEnd", in: conn + `&accounts=[{"_id":"a1","name":"100%"}]`, want: accounts(&linkdv1.Account{Id: "a1", Name: "100%"})},
	{name: "AccountsRawPercentOneHex", in: conn + `&accounts=[{"_id":"a1","name":"5%a"}]`, want: accounts(&linkdv1.Account{Id: "a1", Name: "5%a"})},
	// An escape still decodes beside a literal '%' (a name with "%2A" in it
	// cannot be told from an escape, and is decoded).
	{name: "AccountsEscapeBesideLiteralPercent", in: conn + `&accounts=[{"_id":"a1","name":"5%25 off, 0% fee"}]`, want: accounts(&linkdv1.Account{Id: "a1", Name: "5% off, 0% fee"})},
	{name: "AccountsEncodedPercent", in: withAccounts(`[{"_id":"a1","name":"Plaid Gold Standard 0% Interest Checking"}]`), want: accounts(&linkdv1.Account{Id: "a1", Name: "Plaid Gold Standard 0% Interest Checking"})},
	// Policy: an '&' inside raw (unencoded) accounts JSON is the account
	// name's own, as a raw '%' is: the value runs on until its array closes.
	// Plaid's sandbox and real banks name accounts "Checking & Savings".
	{
		name: "DocConnectedAmpersandInName",
		in:   strings.Replace(docConnected, `"Plaid Savings"`, `"Plaid Checking & Savings"`, 1),
		want: connected(&linkdv1.ConnectedResult{
			PublicToken: tok, InstitutionId: "ins_3", InstitutionName: "Chase", LinkSessionId: "79e772be-547d-4c9c-8b76-4ac4ed4c441a",
			Accounts: []*linkdv1.Account{{Id: "QPO8Jo8vdDHMepg41PBwckXm4KdK1yUdmXOwK", Name: "Plaid Checking & Savings", Mask: "0000", Type: "depository", Subtype: "checking"}},
		}),
	},
	{
		name: "AccountsRawAmpersands",
		in:   conn + `&accounts=[{"_id":"a1","meta":{"name":"A&B","number":"0000"}},{"_id":"a2","meta":{"name":"C &&D&"}}]&link_session_id=s1`,
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, LinkSessionId: "s1", Accounts: []*linkdv1.Account{{Id: "a1", Name: "A&B", Mask: "0000"}, {Id: "a2", Name: "C &&D&"}}}),
	},
	// As WKWebView hands the URL over (WHATWG URL: quotes and spaces
	// percent-encoded, brackets, braces and '&' left raw): the string
	// reading still knows where a name ends, so a ']' or '}' in it is data.
	{
		name: "AccountsWebKitEncodedAmpersandAndBracket",
		in:   conn + `&accounts='[{%22_id%22:%22a1%22,%20%22meta%22:%20{%22name%22:%22Checking%20]}}%20&%20Savings%20\%22x\%22%22}}]'&link_session_id=s1`,
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, LinkSessionId: "s1", Accounts: []*linkdv1.Account{{Id: "a1", Name: `Checking ]}} & Savings "x"`}}}),
	},
	// A name whose '&' follows a ']': the cut value ends as an array
	// does, but does not close one (raw, and as WebKit encodes it).
	{
		name: "AccountsRawBracketBeforeAmpersand",
		in:   conn + `&accounts=[{"_id":"a1","meta":{"name":"Card [Visa]&Co"}}]&link_session_id=s1`,
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, LinkSessionId: "s1", Accounts: []*linkdv1.Account{{Id: "a1", Name: "Card [Visa]&Co"}}}),
	},
	{
		name: "AccountsWebKitBracketBeforeAmpersand",
		in:   conn + `&accounts='[{%22_id%22:%22a1%22,%22meta%22:{%22name%22:%22Card%20[Visa]&Co%22}}]'&link_session_id=s1`,
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, LinkSessionId: "s1", Accounts: []*linkdv1.Account{{Id: "a1", Name: "Card [Visa]&Co"}}}),
	},
	{name: "AccountsRawAmpersandAtEnd", in: conn + `&accounts=[{"_id":"a1","name":"A & B"}]`, want: accounts(&linkdv1.Account{Id: "a1", Name: "A & B"})},
	// Others encode more of the JSON and still leave '&' raw: Chromium
	// (Android WebView) the apostrophe too; Swift's urlQueryAllowed and
	// java.net.URI brackets, braces and '\' as well. The array is found
	// through those escapes.
	{
		name: "AccountsChromiumEncodedApostropheAndAmpersand",
		in:   conn + `&accounts=%27[{%22_id%22:%22a1%22,%22meta%22:{%22name%22:%22Checking%20&%20Savings%22}}]%27&link_session_id=s1`,
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, LinkSessionId: "s1", Accounts: []*linkdv1.Account{{Id: "a1", Name: "Checking & Savings"}}}),
	},
	{
		name: "AccountsQueryAllowedEncodedAmpersand",
		in:   conn + `&accounts='%5B%7B%22_id%22:%22a1%22,%22meta%22:%7B%22name%22:%22A%20&%20B%20%5C%22x%5C%22%22%7D%7D%5D'&link_session_id=s1`,
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, LinkSessionId: "s1", Accounts: []*linkdv1.Account{{Id: "a1", Name: `A & B "x"`}}}),
	},
	{
		name: "AccountsRawBracketEncodedColonsRawAmpersand",
		in:   conn + `&accounts=[{%22_id%22%3A%22a1%22,%22meta%22%3A{%22name%22%3A%22A%20&%20B%22}}]&link_session_id=s1`,
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, LinkSessionId: "s1", Accounts: []*linkdv1.Account{{Id: "a1", Name: "A & B"}}}),
	},
	{
		name: "AccountsEncodedBracketsRawAmpersand",
		in:   conn + `&accounts=%5B%7B%22_id%22:%22a1%22,%22meta%22:%7B%22name%22:%22A%20&%20B%5D%22%7D%7D%5d&link_session_id=s1`,
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, LinkSessionId: "s1", Accounts: []*linkdv1.Account{{Id: "a1", Name: "A & B]"}}}),
	},
	// Fully encoded (encodeURIComponent, as Plaid's own redirects are): a
	// raw '&' after the closed array still ends the value.
	{
		name: "AccountsEncodedThenParams",
		in:   conn + `&accounts=%5B%7B%22_id%22%3A%22a1%22%2C%22meta%22%3A%7B%22name%22%3A%22A%20%26%20B%22%7D%7D%5D&link_session_id=s1`,
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, LinkSessionId: "s1", Accounts: []*linkdv1.Account{{Id: "a1", Name: "A & B"}}}),
	},
	// An array that never closes is still not JSON, and the parameters
	// after it are not swallowed into it.
	{name: "ErrAccountsRawUnclosed", in: conn + `&accounts=[{"_id":"a1","name":"A&link_session_id=s1`, field: "accounts"},
	// A literal '%' outside a JSON string is still not JSON.
	{name: "ErrPercentAccounts", in: conn + "&accounts=[%]", field: "accounts"},
	{name: "ErrPercentAccountsKey", in: conn + "&accounts%=[]", field: "url"},
	{name: "ErrPercentKey", in: "plaidlink://exit?sta%tus=x", field: "url"},
	{name: "ErrInvalidUTF8Value", in: "plaidlink://exit?institution_name=%FF", field: "institution_name"},
	{name: "ErrInvalidUTF8Key", in: "plaidlink://exit?%FF=x", field: "url"},
	{name: "ErrEmptyKey", in: "plaidlink://exit?=x", field: "url"},
	{name: "EmptyPairs", in: "plaidlink://exit?&&status=requires_code&&", want: exit(&linkdv1.ExitResult{Status: "requires_code"})},

	// Policy: a key with no value, or an empty one, is unset.
	{name: "ValuelessKeys", in: "plaidlink://event?event_name=EXIT&exit_status&mfa_type&request_id=&view_name=", want: event(&linkdv1.LinkEvent{EventName: "EXIT"})},
	{name: "ErrorNilWhenEmpty", in: "plaidlink://exit?error_type=&error_code&error_message=&display_message", want: exit(&linkdv1.ExitResult{})},
	{name: "ErrorPartial", in: "plaidlink://exit?error_code=INSTITUTION_DOWN", want: exit(&linkdv1.ExitResult{Error: &linkdv1.LinkError{ErrorCode: "INSTITUTION_DOWN"}})},

	// Policy: a repeated key must repeat its value; an empty repeat is
	// ignored, since empty means unset.
	{name: "RepeatSame", in: "plaidlink://exit?status=requires_code&status=requires_code", want: exit(&linkdv1.ExitResult{Status: "requires_code"})},
	{name: "RepeatEmpty", in: "plaidlink://exit?status=requires_code&status=&status", want: exit(&linkdv1.ExitResult{Status: "requires_code"})},
	{name: "RepeatEncodedSame", in: "plaidlink://exit?institution_name=Wells+Fargo&institution_name=Wells%20Fargo", want: exit(&linkdv1.ExitResult{InstitutionName: "Wells Fargo"})},
	{name: "ErrRepeatDifferent", in: "plaidlink://exit?status=requires_code&status=requires_oauth", field: "status"},
	{name: "ErrRepeatPublicToken", in: "plaidlink://connected?public_token=" + tok + "&public_token=" + secret, field: "public_token"},
	{name: "ErrRepeatAccounts", in: conn + `&accounts=[]&accounts=[{}]`, field: "accounts"},

	// Legacy keys fold into their modern key and must agree with it; a
	// conflict names the modern key.
	{name: "DisplayMessage", in: "plaidlink://exit?display_message=Try+again", want: exit(&linkdv1.ExitResult{Error: &linkdv1.LinkError{DisplayMessage: "Try again"}})},
	{name: "DisplayMessageBothSame", in: "plaidlink://exit?display_message=Try+again&error_display_message=Try%20again", want: exit(&linkdv1.ExitResult{Error: &linkdv1.LinkError{DisplayMessage: "Try again"}})},
	{name: "ErrDisplayMessageBothDifferent", in: "plaidlink://exit?error_display_message=Try+again&display_message=Try+later", field: "display_message"},
	{name: "ErrErrorDisplayMessageRepeated", in: "plaidlink://exit?error_display_message=a&error_display_message=b", field: "error_display_message"},
	{name: "EventErrorDisplayMessage", in: "plaidlink://event?event_name=ERROR&error_display_message=Try+again", want: event(&linkdv1.LinkEvent{EventName: "ERROR", Error: &linkdv1.LinkError{DisplayMessage: "Try again"}})},
	{name: "LinkRequestID", in: "plaidlink://exit?link_request_id=r1", want: exit(&linkdv1.ExitResult{RequestId: "r1"})},
	{name: "RequestIDLegacyEmpty", in: "plaidlink://exit?request_id=r1&link_request_id=", want: exit(&linkdv1.ExitResult{RequestId: "r1"})},
	{name: "ErrRequestIDLegacyDifferent", in: "plaidlink://exit?request_id=r1&link_request_id=r2", field: "request_id"},
	{name: "ErrLinkRequestIDRepeated", in: "plaidlink://exit?link_request_id=r1&link_request_id=r2", field: "link_request_id"},
	// Policy: plaid_api_request_id is not a legacy request_id. Plaid's
	// webview samples read link_request_id and plaid_api_request_id as two
	// IDs (Link's last request, and the last Plaid API request); they may
	// differ, and that is never a reason to refuse a redirect.
	{name: "PlaidAPIRequestID", in: "plaidlink://event?event_name=OPEN&plaid_api_request_id=r1", want: event(&linkdv1.LinkEvent{EventName: "OPEN", ApiRequestId: "r1"})},
	{name: "RequestIDAllSame", in: "plaidlink://exit?request_id=r1&link_request_id=r1&plaid_api_request_id=r1", want: exit(&linkdv1.ExitResult{RequestId: "r1", ApiRequestId: "r1"})},
	{name: "ExitLinkAndAPIRequestIDsDiffer", in: "plaidlink://exit?status=requires_credentials&link_request_id=m8MDnv9okwxFNBV&plaid_api_request_id=Hq2qPuhbBDxOAcz", want: exit(&linkdv1.ExitResult{Status: "requires_credentials", RequestId: "m8MDnv9okwxFNBV", ApiRequestId: "Hq2qPuhbBDxOAcz"})},
	{name: "EventRequestIDAndAPIRequestIDDiffer", in: "plaidlink://event?event_name=OPEN&plaid_api_request_id=r1&link_request_id=r2&request_id=r2", want: event(&linkdv1.LinkEvent{EventName: "OPEN", RequestId: "r2", ApiRequestId: "r1"})},
	{name: "ErrPlaidAPIRequestIDRepeated", in: "plaidlink://exit?plaid_api_request_id=r1&plaid_api_request_id=r2", field: "plaid_api_request_id"},
	// Legacy Link's per-account keys: the one selected account. Kept as sent
	// on ConnectedResult, and folded into accounts.
	{
		name: "LegacyAccount", in: conn + "&account_id=acc1&account_name=Plaid+Checking",
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, AccountId: "acc1", AccountName: "Plaid Checking", Accounts: []*linkdv1.Account{{Id: "acc1", Name: "Plaid Checking"}}}),
	},
	{
		name: "LegacyAccountNameOnly", in: conn + "&account_name=Plaid+Checking",
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, AccountName: "Plaid Checking", Accounts: []*linkdv1.Account{{Name: "Plaid Checking"}}}),
	},
	{
		name: "LegacyAccountAllKeys", in: conn + "&account_id=acc1&account_name=Plaid+Checking&account_mask=0000&account_type=depository&account_subtype=checking",
		want: connected(&linkdv1.ConnectedResult{
			PublicToken: tok, AccountId: "acc1", AccountName: "Plaid Checking", AccountMask: "0000", AccountType: "depository", AccountSubtype: "checking",
			Accounts: []*linkdv1.Account{{Id: "acc1", Name: "Plaid Checking", Mask: "0000", Type: "depository", Subtype: "checking"}},
		}),
	},
	{
		name: "LegacyAccountMaskOnly", in: conn + "&account_mask=0000",
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, AccountMask: "0000", Accounts: []*linkdv1.Account{{Mask: "0000"}}}),
	},
	{
		name: "LegacyAccountMatchesAccounts", in: withAccounts(`[{"_id":"a1","meta":{"name":"One"}},{"_id":"a2"}]`) + "&account_id=a2&account_name=Two",
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, AccountId: "a2", AccountName: "Two", Accounts: []*linkdv1.Account{{Id: "a1", Name: "One"}, {Id: "a2", Name: "Two"}}}),
	},
	{
		name: "LegacyAccountNameMatchesAccounts", in: withAccounts(`[{"_id":"a1","meta":{"name":"One"}}]`) + "&account_name=One",
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, AccountName: "One", Accounts: []*linkdv1.Account{{Id: "a1", Name: "One"}}}),
	},
	// The legacy keys fill what the named account lacks and must agree with
	// what it has.
	{
		name: "LegacyAccountKeysFillAccounts",
		in:   withAccounts(`[{"_id":"a1"},{"_id":"a2","meta":{"name":"Two","number":"1111"},"type":"depository"}]`) + "&account_id=a2&account_mask=1111&account_type=depository&account_subtype=savings",
		want: connected(&linkdv1.ConnectedResult{
			PublicToken: tok, AccountId: "a2", AccountMask: "1111", AccountType: "depository", AccountSubtype: "savings",
			Accounts: []*linkdv1.Account{{Id: "a1"}, {Id: "a2", Name: "Two", Mask: "1111", Type: "depository", Subtype: "savings"}},
		}),
	},
	// Without account_id or account_name the others name no account: kept
	// on ConnectedResult only, never a reason to refuse.
	{
		name: "LegacyAccountKeysWithoutIDBesideAccounts",
		in:   withAccounts(`[{"_id":"a1","type":"credit"},{"_id":"a2"}]`) + "&account_mask=0000&account_type=depository&account_subtype=checking",
		want: connected(&linkdv1.ConnectedResult{
			PublicToken: tok, AccountMask: "0000", AccountType: "depository", AccountSubtype: "checking",
			Accounts: []*linkdv1.Account{{Id: "a1", Type: "credit"}, {Id: "a2"}},
		}),
	},
	{name: "ErrLegacyAccountIDNotInAccounts", in: withAccounts(`[{"_id":"a1"}]`) + "&account_id=a2", field: "account_id"},
	{name: "ErrLegacyAccountNameNotInAccounts", in: withAccounts(`[{"_id":"a1","meta":{"name":"One"}}]`) + "&account_name=Two", field: "account_name"},
	{name: "ErrLegacyAccountNameDiffers", in: withAccounts(`[{"_id":"a1","meta":{"name":"One"}}]`) + "&account_id=a1&account_name=Two", field: "account_name"},
	{name: "ErrLegacyAccountMaskDiffers", in: withAccounts(`[{"_id":"a1","meta":{"number":"0000"}}]`) + "&account_id=a1&account_mask=9999", field: "account_mask"},
	{name: "ErrLegacyAccountTypeDiffers", in: withAccounts(`[{"_id":"a1","type":"depository"}]`) + "&account_id=a1&account_type=credit", field: "account_type"},
	{name: "ErrLegacyAccountSubtypeDiffers", in: withAccounts(`[{"_id":"a1","subtype":"checking"}]`) + "&account_id=a1&account_subtype=savings", field: "account_subtype"},
	{name: "ErrLegacyAccountMaskRepeated", in: conn + "&account_mask=0000&account_mask=1111", field: "account_mask"},

	// Policy: unknown keys, and keys of another kind, are kept in
	// unrecognized_params; a valueless one is kept as "".
	{name: "UnknownKeys", in: "plaidlink://exit?status=requires_code&new_key=v&flag", want: exit(&linkdv1.ExitResult{Status: "requires_code"}, "new_key", "v", "flag", "")},
	{name: "UnknownKeysRepeatSame", in: "plaidlink://exit?k=v&k=v&k", want: exit(&linkdv1.ExitResult{}, "k", "v")},
	{name: "UnknownKeyFilledLater", in: "plaidlink://exit?k&k=v", want: exit(&linkdv1.ExitResult{}, "k", "v")},
	{name: "ErrUnknownKeyRepeatDifferent", in: "plaidlink://exit?k=v&k=w", field: "k"},
	{name: "KeysAreCaseSensitive", in: "plaidlink://exit?Status=requires_code", want: exit(&linkdv1.ExitResult{}, "Status", "requires_code")},
	{name: "OtherKindKeysOnConnected", in: conn + "&status=requires_code&request_id=r1&event_name=OPEN", want: connected(&linkdv1.ConnectedResult{PublicToken: tok}, "status", "requires_code", "request_id", "r1", "event_name", "OPEN")},
	{name: "OtherKindKeysOnExit", in: "plaidlink://exit?accounts=[]&timestamp=now&exit_status=x", want: exit(&linkdv1.ExitResult{}, "accounts", "[]", "timestamp", "now", "exit_status", "x")},
	{name: "OtherKindKeysOnEvent", in: "plaidlink://event?event_name=OPEN&status=x&account_id=a1", want: event(&linkdv1.LinkEvent{EventName: "OPEN"}, "status", "x", "account_id", "a1")},
	// Policy: the exception. A public token outside connected is refused,
	// not kept, so that linkd never holds one in plain form.
	{name: "ErrPublicTokenOnExit", in: "plaidlink://exit?public_token=" + secret, field: "public_token"},
	{name: "ErrPublicTokenOnEvent", in: "plaidlink://event?event_name=HANDOFF&public_token=" + secret, field: "public_token"},
	// Empty, it is unset like any other key, and dropped.
	{name: "PublicTokenEmptyOnExit", in: "plaidlink://exit?public_token&status=requires_code", want: exit(&linkdv1.ExitResult{Status: "requires_code"})},

	// Policy: connected needs its public_token, event its event_name.
	{name: "ErrConnectedNoPublicToken", in: "plaidlink://connected?institution_id=ins_3", field: "public_token"},
	{name: "ErrConnectedEmptyPublicToken", in: "plaidlink://connected?public_token=&institution_id=ins_3", field: "public_token"},
	{name: "ErrEventNoEventName", in: "plaidlink://event?view_name=ERROR", field: "event_name"},

	// Every connected field.
	{
		name: "ConnectedAllFields",
		in: conn + "&institution_id=ins_109508&institution_name=First+Platypus+Bank&link_session_id=s1&accounts=" + url.QueryEscape(
			`[{"_id":"a1","meta":{"name":"Plaid Checking","number":"0000"},"type":"depository","subtype":"checking",`+
				`"verification_status":"pending_manual_verification","class_type":"business","transfer_status":"COMPLETE"}]`),
		want: connected(&linkdv1.ConnectedResult{
			PublicToken: tok, InstitutionId: "ins_109508", InstitutionName: "First Platypus Bank", LinkSessionId: "s1",
			Accounts: []*linkdv1.Account{{
				Id: "a1", Name: "Plaid Checking", Mask: "0000", Type: "depository", Subtype: "checking",
				VerificationStatus: "pending_manual_verification", ClassType: "business",
			}},
			TransferStatus: "COMPLETE", // the session's, though it came in the account
		}),
	},

	// transfer_status is the Link session's (Plaid's
	// LinkSessionSuccessMetadata.transfer_status), so ConnectedResult's:
	// from its own parameter, or from an account in accounts (the doc lists
	// it among the accounts' fields); all must agree.
	{name: "TransferStatusParam", in: conn + "&transfer_status=INCOMPLETE", want: connected(&linkdv1.ConnectedResult{PublicToken: tok, TransferStatus: "INCOMPLETE"})},
	{
		name: "TransferStatusParamAndAccountsAgree",
		in:   withAccounts(`[{"_id":"a1","transfer_status":"COMPLETE"},{"_id":"a2","transfer_status":null},{"_id":"a3"}]`) + "&transfer_status=COMPLETE",
		want: connected(&linkdv1.ConnectedResult{PublicToken: tok, TransferStatus: "COMPLETE", Accounts: []*linkdv1.Account{{Id: "a1"}, {Id: "a2"}, {Id: "a3"}}}),
	},
	{name: "ErrTransferStatusParamAndAccountDiffer", in: withAccounts(`[{"_id":"a1","transfer_status":"INCOMPLETE"}]`) + "&transfer_status=COMPLETE", field: "transfer_status"},
	{name: "ErrTransferStatusAccountsDiffer", in: withAccounts(`[{"transfer_status":"COMPLETE"},{"transfer_status":"INCOMPLETE"}]`), field: "transfer_status"},
	{name: "ErrTransferStatusRepeatedInAccount", in: withAccounts(`[{"transfer_status":"COMPLETE","transfer_status":"INCOMPLETE"}]`), field: "accounts[0].transfer_status"},
	{name: "ErrTransferStatusNotString", in: withAccounts(`[{"transfer_status":1}]`), field: "accounts[0].transfer_status"},
	{name: "TransferStatusOnExit", in: "plaidlink://exit?transfer_status=COMPLETE", want: exit(&linkdv1.ExitResult{}, "transfer_status", "COMPLETE")},

	// accounts.
	{name: "AccountsEmpty", in: conn + "&accounts=", want: accounts()},
	{name: "AccountsEmptyQuotes", in: conn + "&accounts=''", want: accounts()},
	{name: "AccountsEmptyArray", in: conn + "&accounts=[]", want: accounts()},
	{name: "AccountsNull", in: conn + "&accounts=null", want: accounts()},
	{name: "AccountsQuotedEncoded", in: conn + "&accounts=%27%5B%7B%22_id%22%3A%22a1%22%7D%5D%27", want: accounts(&linkdv1.Account{Id: "a1"})},
	{name: "AccountsSurroundingSpace", in: withAccounts(` '[{"_id":"a1"}]' `), want: accounts(&linkdv1.Account{Id: "a1"})},
	// Policy: _id, meta.name, meta.number are Plaid's names; plain id, name,
	// mask, and legacy account_id are accepted for the same fields.
	{name: "AccountsPlainNames", in: withAccounts(`[{"id":"a1","name":"Checking","mask":"1234"}]`), want: accounts(&linkdv1.Account{Id: "a1", Name: "Checking", Mask: "1234"})},
	{name: "AccountsLegacyAccountID", in: withAccounts(`[{"account_id":"a1"}]`), want: accounts(&linkdv1.Account{Id: "a1"})},
	{name: "AccountsAliasesAgree", in: withAccounts(`[{"_id":"a1","id":"a1","account_id":"a1","name":"N","meta":{"name":"N","number":"1"},"mask":"1"}]`), want: accounts(&linkdv1.Account{Id: "a1", Name: "N", Mask: "1"})},
	{name: "ErrAccountsIDAliasesDiffer", in: withAccounts(`[{"_id":"a1","id":"a2"}]`), field: "accounts[0]._id"},
	{name: "ErrAccountsNameAliasesDiffer", in: withAccounts(`[{"meta":{"name":"A"},"name":"B"}]`), field: "accounts[0].meta.name"},
	{name: "ErrAccountsMaskAliasesDiffer", in: withAccounts(`[{"mask":"1","meta":{"number":"2"}}]`), field: "accounts[0].meta.number"},
	{name: "ErrAccountsKeyRepeated", in: withAccounts(`[{"type":"depository","type":"credit"}]`), field: "accounts[0].type"},
	// Policy: null means unset for every string; meta may be null.
	{name: "AccountsNumberNull", in: withAccounts(`[{"_id":"a1","meta":{"name":"N","number":null}}]`), want: accounts(&linkdv1.Account{Id: "a1", Name: "N"})},
	{name: "AccountsNulls", in: withAccounts(`[{"_id":"a1","meta":null,"class_type":null,"transfer_status":null,"verification_status":null,"type":null}]`), want: accounts(&linkdv1.Account{Id: "a1"})},
	{name: "AccountsNullDoesNotConflict", in: withAccounts(`[{"_id":"a1","id":null}]`), want: accounts(&linkdv1.Account{Id: "a1"})},
	// Policy: keys Plaid adds to an account are skipped, whatever their shape.
	{name: "AccountsUnknownKeys", in: withAccounts(`[{"_id":"a1","balances":{"available":100.5,"iso":["USD",null,true]},"official_name":"X","meta":{"official":{"a":[1]}}}]`), want: accounts(&linkdv1.Account{Id: "a1"})},
	{name: "AccountsEmptyObject", in: withAccounts(`[{}]`), want: accounts(&linkdv1.Account{})},
	{name: "AccountsEscapes", in: withAccounts(`[{"_id":"a\"1\u00e9,}"}]`), want: accounts(&linkdv1.Account{Id: "a\"1é,}"})},
	// Trailing commas (see DocAccounts): after the last element or member,
	// not in place of one.
	{name: "AccountsTrailingCommaArray", in: withAccounts(`[{"_id":"a1"},]`), want: accounts(&linkdv1.Account{Id: "a1"})},
	{name: "AccountsTrailingCommaObject", in: withAccounts(`[{"_id":"a1", "meta":{"number":"1",} ,}]`), want: accounts(&linkdv1.Account{Id: "a1", Mask: "1"})},
	{name: "AccountsCommaInString", in: withAccounts(`[{"_id":"a,]"}]`), want: accounts(&linkdv1.Account{Id: "a,]"})},
	{name: "ErrAccountsOnlyComma", in: withAccounts(`[,]`), field: "accounts"},
	{name: "ErrAccountsEmptyObjectComma", in: withAccounts(`[{,}]`), field: "accounts"},
	{name: "ErrAccountsDoubleComma", in: withAccounts(`[{"_id":"a1"},,]`), field: "accounts"},
	{name: "ErrAccountsLeadingComma", in: withAccounts(`,[]`), field: "accounts"},
	// Broken JSON names accounts; a bad value inside names its path.
	{name: "ErrAccountsNotJSON", in: conn + "&accounts=checking", field: "accounts"},
	{name: "ErrAccountsTruncated", in: withAccounts(`[{"_id":"a1"`), field: "accounts"},
	{name: "ErrAccountsOneQuote", in: withAccounts(`'[{"_id":"a1"}]`), field: "accounts"},
	{name: "ErrAccountsDoubleQuoted", in: withAccounts(`"[]"`), field: "accounts"},
	{name: "ErrAccountsObject", in: withAccounts(`{"_id":"a1"}`), field: "accounts"},
	{name: "ErrAccountsTrailingData", in: withAccounts(`[] []`), field: "accounts"},
	{name: "ErrAccountsTrailingGarbage", in: withAccounts(`[]x`), field: "accounts"},
	{name: "ErrAccountsSingleQuotedJSON", in: withAccounts(`[{'_id':'a1'}]`), field: "accounts"},
	{name: "ErrAccountsElementNotObject", in: withAccounts(`["a1"]`), field: "accounts[0]"},
	{name: "ErrAccountsElementNull", in: withAccounts(`[{"_id":"a1"},null]`), field: "accounts[1]"},
	{name: "ErrAccountsIDNumber", in: withAccounts(`[{"_id":1}]`), field: "accounts[0]._id"},
	{name: "ErrAccountsNumberNotString", in: withAccounts(`[{"_id":"a1"},{"_id":"a2","meta":{"number":1111}}]`), field: "accounts[1].meta.number"},
	{name: "ErrAccountsNameObject", in: withAccounts(`[{"meta":{"name":{}}}]`), field: "accounts[0].meta.name"},
	{name: "ErrAccountsTypeBool", in: withAccounts(`[{"type":true}]`), field: "accounts[0].type"},
	{name: "ErrAccountsMetaString", in: withAccounts(`[{"meta":"Plaid Checking"}]`), field: "accounts[0].meta"},

	// Every event field, and timestamps.
	{
		name: "EventAllFields",
		in: "plaidlink://event?event_name=TRANSITION_VIEW&error_type=ITEM_ERROR&error_code=ITEM_LOGIN_REQUIRED&error_message=m&display_message=d" +
			"&exit_status=requires_code&institution_id=ins_3&institution_name=Chase&institution_search_query=chase+bank&is_update_mode=true" +
			"&match_reason=returning_user&mfa_type=code&view_name=MFA&request_id=r1&link_session_id=s1&timestamp=2017-09-14T14:42:19.350Z" +
			"&selection=phoneotp&routing_number=011401533&account_number_mask=1234&plaid_api_request_id=a1&brand_name=Bank+of+America" +
			"&issue_id=iss_1&issue_description=Login+errors+at+this+bank&issue_detected_at=2017-09-14T14%3A40%3A00Z",
		want: event(&linkdv1.LinkEvent{
			EventName:  "TRANSITION_VIEW",
			Error:      &linkdv1.LinkError{ErrorType: "ITEM_ERROR", ErrorCode: "ITEM_LOGIN_REQUIRED", ErrorMessage: "m", DisplayMessage: "d"},
			ExitStatus: "requires_code", InstitutionId: "ins_3", InstitutionName: "Chase", InstitutionSearchQuery: "chase bank",
			IsUpdateMode: true, MatchReason: "returning_user", MfaType: "code", ViewName: "MFA", RequestId: "r1", LinkSessionId: "s1",
			Timestamp: timestamppb.New(time.Date(2017, 9, 14, 14, 42, 19, 350e6, time.UTC)),
			Selection: "phoneotp", RoutingNumber: "011401533", AccountNumberMask: "1234", ApiRequestId: "a1", BrandName: "Bank of America",
			IssueId: "iss_1", IssueDescription: "Login errors at this bank", IssueDetectedAt: timestamppb.New(time.Date(2017, 9, 14, 14, 40, 0, 0, time.UTC)),
		}),
	},
	// Fields Plaid's SDKs document on events today: brand_name (SELECT_BRAND),
	// and the issue_* ones only redirects carry.
	{name: "EventBrandName", in: "plaidlink://event?event_name=SELECT_BRAND&brand_name=Bank%20of%20America&view_name=SELECT_BRAND", want: event(&linkdv1.LinkEvent{EventName: "SELECT_BRAND", BrandName: "Bank of America", ViewName: "SELECT_BRAND"})},
	{
		name: "EventIssue",
		in:   "plaidlink://event?event_name=ERROR&institution_id=ins_3&issue_id=4b7f1c&issue_description=Chase+logins+are+failing&issue_detected_at=2024-03-11T17:05:41.052%2B01:00",
		want: event(&linkdv1.LinkEvent{
			EventName: "ERROR", InstitutionId: "ins_3", IssueId: "4b7f1c", IssueDescription: "Chase logins are failing",
			IssueDetectedAt: timestamppb.New(time.Date(2024, 3, 11, 16, 5, 41, 52e6, time.UTC)),
		}),
	},
	{name: "EventIssueDetectedAtRawPlus", in: "plaidlink://event?event_name=ERROR&issue_detected_at=2018-10-05T17:22:50.542+02:00", want: event(&linkdv1.LinkEvent{EventName: "ERROR", IssueDetectedAt: docEventTime})},
	{name: "ErrEventIssueDetectedAtWord", in: "plaidlink://event?event_name=ERROR&issue_detected_at=yesterday", field: "issue_detected_at"},
	{name: "ErrEventIssueIDRepeated", in: "plaidlink://event?event_name=ERROR&issue_id=a&issue_id=b", field: "issue_id"},
	{name: "IssueOnExit", in: "plaidlink://exit?issue_id=a&brand_name=B", want: exit(&linkdv1.ExitResult{}, "issue_id", "a", "brand_name", "B")},
	{name: "TimestampNoFraction", in: "plaidlink://event?event_name=OPEN&timestamp=2018-10-05T15:22:50Z", want: event(&linkdv1.LinkEvent{EventName: "OPEN", Timestamp: timestamppb.New(time.Date(2018, 10, 5, 15, 22, 50, 0, time.UTC))})},
	{name: "TimestampOffsetEncoded", in: "plaidlink://event?event_name=OPEN&timestamp=2018-10-05T17%3A22%3A50.542%2B02%3A00", want: event(&linkdv1.LinkEvent{EventName: "OPEN", Timestamp: docEventTime})},
	{name: "TimestampOffsetNegative", in: "plaidlink://event?event_name=OPEN&timestamp=2018-10-05T08:22:50.542-07:00", want: event(&linkdv1.LinkEvent{EventName: "OPEN", Timestamp: docEventTime})},
	// Policy: an unencoded '+' in the offset decodes to a space; it is read
	// back as '+', the only thing it can have been.
	{name: "TimestampOffsetRawPlus", in: "plaidlink://event?event_name=OPEN&timestamp=2018-10-05T17:22:50.542+02:00", want: event(&linkdv1.LinkEvent{EventName: "OPEN", Timestamp: docEventTime})},
	{name: "TimestampNanos", in: "plaidlink://event?event_name=OPEN&timestamp=2018-10-05T15:22:50.123456789Z", want: event(&linkdv1.LinkEvent{EventName: "OPEN", Timestamp: timestamppb.New(time.Date(2018, 10, 5, 15, 22, 50, 123456789, time.UTC))})},
	{name: "ErrTimestampWord", in: "plaidlink://event?event_name=OPEN&timestamp=yesterday", field: "timestamp"},
	{name: "ErrTimestampDateOnly", in: "plaidlink://event?event_name=OPEN&timestamp=2018-10-05", field: "timestamp"},
	{name: "ErrTimestampNoZone", in: "plaidlink://event?event_name=OPEN&timestamp=2018-10-05T15:22:50.542", field: "timestamp"},
	{name: "ErrTimestampSpaceForT", in: "plaidlink://event?event_name=OPEN&timestamp=2018-10-05+15:22:50Z", field: "timestamp"},
	{name: "ErrTimestampUnix", in: "plaidlink://event?event_name=OPEN&timestamp=1538752970", field: "timestamp"},
	{name: "ErrTimestampHour24", in: "plaidlink://event?event_name=OPEN&timestamp=2018-10-05T24:00:00Z", field: "timestamp"},
	{name: "ErrTimestampYearZero", in: "plaidlink://event?event_name=OPEN&timestamp=0000-01-01T00:00:00Z", field: "timestamp"},
	{name: "IsUpdateModeTrue", in: "plaidlink://event?event_name=OPEN&is_update_mode=TRUE", want: event(&linkdv1.LinkEvent{EventName: "OPEN", IsUpdateMode: true})},
	{name: "IsUpdateModeFalse", in: "plaidlink://event?event_name=OPEN&is_update_mode=False", want: event(&linkdv1.LinkEvent{EventName: "OPEN"})},
	{name: "IsUpdateModeEmpty", in: "plaidlink://event?event_name=OPEN&is_update_mode", want: event(&linkdv1.LinkEvent{EventName: "OPEN"})},
	{name: "ErrIsUpdateModeYes", in: "plaidlink://event?event_name=OPEN&is_update_mode=yes", field: "is_update_mode"},
	{name: "ErrIsUpdateModeOne", in: "plaidlink://event?event_name=OPEN&is_update_mode=1", field: "is_update_mode"},
	{name: "ErrIsUpdateModeRepeat", in: "plaidlink://event?event_name=OPEN&is_update_mode=true&is_update_mode=false", field: "is_update_mode"},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := redirect.Parse(tt.in)
			checkParse(t, tt.in, got, err, tt.want, tt.field)
		})
	}
}

// checkParse checks one Parse result against want, or against an EINVALID
// error naming field when want is nil.
func checkParse(t *testing.T, in string, got *linkdv1.WebviewRedirect, err error, want *linkdv1.WebviewRedirect, field string) {
	t.Helper()
	if want != nil {
		if err != nil {
			t.Fatalf("Parse(%q) error: %v", in, err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("Parse(%q):\ngot  %v\nwant %v", in, prototext.Format(got), prototext.Format(want))
		}
		return
	}
	if err == nil {
		t.Fatalf("Parse(%q) = %v, want an error naming %q", in, prototext.Format(got), field)
	}
	if got != nil {
		t.Errorf("Parse(%q) returned a result with its error", in)
	}
	var e *linkd.Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse(%q) error %v (%T), want a *linkd.Error", in, err, err)
	}
	if e.Code != linkd.EINVALID || e.Field != field {
		t.Errorf("Parse(%q) error code %q field %q, want %q %q (%v)", in, e.Code, e.Field, linkd.EINVALID, field, err)
	}
	if e.Message == "" {
		t.Errorf("Parse(%q) error has no message", in)
	}
	for _, token := range []string{tok, secret} {
		if strings.Contains(err.Error(), token) {
			t.Errorf("Parse(%q) error %q echoes a public token", in, err)
		}
	}
}

// TestParse_Testdata parses each testdata/*.txt, a redirect URL on one line,
// and checks it against the prototext WebviewRedirect in the matching .want
// file, or the error Field in the matching .err file. -update rewrites the
// .want files.
func TestParse_Testdata(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.txt")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			in := mustReadURL(t, file)
			base := strings.TrimSuffix(file, ".txt")
			got, err := redirect.Parse(in)
			if field, ok := readOptional(t, base+".err"); ok {
				checkParse(t, in, got, err, nil, strings.TrimSpace(field))
				return
			}
			if *update && err == nil {
				b, err := prototext.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(got)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(base+".want", b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			text, ok := readOptional(t, base+".want")
			if !ok {
				t.Fatalf("no %s.want or %s.err", base, base)
			}
			want := &linkdv1.WebviewRedirect{}
			if err := prototext.Unmarshal([]byte(text), want); err != nil {
				t.Fatalf("%s.want: %v", base, err)
			}
			checkParse(t, in, got, err, want, "")
		})
	}
}

// TestParse_TestdataMatchesDoc keeps the captured doc examples and the
// table's copies of them from drifting apart.
func TestParse_TestdataMatchesDoc(t *testing.T) {
	for file, want := range map[string]string{
		"seed-connected.txt": docConnected,
		"seed-exit.txt":      docExit,
		"seed-event.txt":     docEvent,
		"seed-create.txt":    docCreate,
		"seed-scheme.txt":    docScheme,
	} {
		if got := mustReadURL(t, filepath.Join("testdata", file)); got != want {
			t.Errorf("testdata/%s = %q, want the doc example %q", file, got, want)
		}
	}
}

// mustReadURL reads a testdata URL, without its final newline.
func mustReadURL(tb testing.TB, file string) string {
	tb.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

func readOptional(tb testing.TB, file string) (string, bool) {
	tb.Helper()
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	} else if err != nil {
		tb.Fatal(err)
	}
	return string(b), true
}

// TestParse_ErrorIsTypedNil guards against returning a nil *linkd.Error as a
// non-nil error.
func TestParse_ErrorIsTypedNil(t *testing.T) {
	if _, err := redirect.Parse(docExit); err != nil {
		t.Fatalf("Parse(docExit) error = %#v, want nil", err)
	}
}

// FuzzParse checks that Parse never panics, fails only with a
// caller-safe EINVALID naming a field, and returns results that are
// deterministic and marshal (proto strings must be UTF-8).
func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.in)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	for _, file := range files {
		f.Add(mustReadURL(f, file))
	}
	f.Fuzz(func(t *testing.T, in string) {
		// Whatever else is wrong, an error must not echo the public token:
		// swap in a recognizable one and look for it.
		if before, after, ok := strings.Cut(in, "public_token="); ok {
			const sentinel = "public-sandbox-5e471e1"
			_, rest, _ := strings.Cut(after, "&")
			swapped := before + "public_token=" + sentinel + "&" + rest
			if _, err := redirect.Parse(swapped); err != nil && strings.Contains(err.Error(), sentinel) {
				t.Fatalf("Parse(%q) error %q echoes the public token", swapped, err)
			}
		}

		got, err := redirect.Parse(in)
		if err != nil {
			e, ok := err.(*linkd.Error)
			if !ok {
				t.Fatalf("Parse(%q) error %v is a %T, want *linkd.Error", in, err, err)
			}
			if e.Code != linkd.EINVALID || e.Field == "" || e.Message == "" {
				t.Fatalf("Parse(%q) error %#v, want EINVALID with Field and Message", in, e)
			}
			if got != nil {
				t.Fatalf("Parse(%q) returned a result with its error", in)
			}
			return
		}
		if got.GetResult() == nil {
			t.Fatalf("Parse(%q) = %v, want one of connected, exit, event", in, got)
		}
		if _, err := proto.Marshal(got); err != nil {
			t.Fatalf("Parse(%q) result does not marshal: %v", in, err)
		}
		again, err := redirect.Parse(in)
		if err != nil || !proto.Equal(got, again) {
			t.Fatalf("Parse(%q) is not deterministic:\n%v\n%v (%v)", in, prototext.Format(got), prototext.Format(again), err)
		}
	})
}

// manyParams returns n unknown parameters, "&u0=v&u1=v...".
func manyParams(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "&u%d=v", i)
	}
	return b.String()
}

// manyParamsMap is what Parse keeps of manyParams(n).
func manyParamsMap(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("u%d", i)] = "v"
	}
	return m
}

// withUnrecognized sets a redirect's unrecognized_params.
func withUnrecognized(r *linkdv1.WebviewRedirect, m map[string]string) *linkdv1.WebviewRedirect {
	r.UnrecognizedParams = m
	return r
}
