package server

import (
	"context"
	"net/url"
	"regexp"
	"strings"

	"github.com/linkd/linkd"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

var (
	androidPackagePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$`)
	oauthStatePattern     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// checkRedirectURI returns EINVALID naming redirect_uri for a URI Plaid
// would refuse: not absolute, a custom scheme, http outside the sandbox, or
// a query, fragment or user info. Plaid appends oauth_state_id itself.
func checkRedirectURI(uri, env string) error {
	if uri == "" {
		return nil
	}
	u, err := url.Parse(uri)
	switch {
	case err != nil || u.Hostname() == "": // "https://:443/cb" has a port only
		return linkd.InvalidField("redirect_uri", "redirect_uri is not an absolute URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return linkd.InvalidField("redirect_uri", "redirect_uri must be https; a custom scheme is not accepted by Plaid (use an https universal or app link)")
	case u.Scheme == "http" && env != linkd.PlaidSandbox:
		return linkd.InvalidField("redirect_uri", "redirect_uri must be https outside the sandbox")
	case u.RawQuery != "" || u.ForceQuery:
		return linkd.InvalidField("redirect_uri", "redirect_uri must not have a query")
	case u.Fragment != "" || strings.Contains(uri, "#"):
		return linkd.InvalidField("redirect_uri", "redirect_uri must not have a fragment")
	case u.User != nil:
		return linkd.InvalidField("redirect_uri", "redirect_uri must not have user info")
	}
	return nil
}

// checkOAuthTarget returns EINVALID for an android_package_name that is not
// a package name, or that comes with a redirect_uri: Plaid takes one or the
// other.
func checkOAuthTarget(redirectURI, androidPackage string) error {
	if androidPackage == "" {
		return nil
	}
	if !androidPackagePattern.MatchString(androidPackage) || len(androidPackage) > 255 {
		return linkd.InvalidField("android_package_name", "android_package_name is not an Android package name")
	}
	if redirectURI != "" {
		return linkd.InvalidField("android_package_name", "android_package_name and redirect_uri cannot both be set")
	}
	return nil
}

// ResumeOAuth returns the webview URL that relaunches Link with the OAuth
// redirect the app received.
func (s *Server) ResumeOAuth(ctx context.Context, req *linkdv1.ResumeOAuthRequest) (*linkdv1.ResumeOAuthResponse, error) {
	if err := checkPattern("link_token", req.GetLinkToken(), linkTokenPattern, "a Plaid link token"); err != nil {
		return nil, err
	}
	if req.GetReceivedRedirectUri() == "" {
		return nil, linkd.InvalidField("received_redirect_uri", "received_redirect_uri is required")
	}
	tok, err := s.linkTokenFor(ctx, req.GetLinkToken())
	if err != nil {
		return nil, err
	}
	if tok.GetRedirectUri() == "" {
		return nil, linkd.Errorf(linkd.EPRECONDITION, "link_token was created without a redirect_uri, so it cannot resume OAuth")
	}
	if err := checkReceivedRedirectURI(req.GetReceivedRedirectUri(), tok.GetRedirectUri()); err != nil {
		return nil, err
	}
	webview := s.svc.WebviewURL(tok.GetLinkToken()) + "&receivedRedirectUri=" + url.QueryEscape(req.GetReceivedRedirectUri())
	return &linkdv1.ResumeOAuthResponse{WebviewUrl: webview}, nil
}

// checkReceivedRedirectURI returns EINVALID naming received_redirect_uri
// unless got is want (same scheme, host and path) with exactly one query
// parameter, oauth_state_id, and nothing else.
func checkReceivedRedirectURI(got, want string) error {
	const field = "received_redirect_uri"
	g, err := url.Parse(got)
	if err != nil {
		return linkd.InvalidField(field, "received_redirect_uri is not a URL")
	}
	w, err := url.Parse(want)
	if err != nil {
		return linkd.Errorf(linkd.EINTERNAL, "stored redirect_uri does not parse: %v", err)
	}
	if !strings.EqualFold(g.Scheme, w.Scheme) || !sameHTTPPlace(g, w) {
		return linkd.InvalidField(field, "received_redirect_uri is not the link token's redirect_uri")
	}
	if g.User != nil || g.Fragment != "" || strings.Contains(got, "#") {
		return linkd.InvalidField(field, "received_redirect_uri must not have user info or a fragment")
	}
	q, err := url.ParseQuery(g.RawQuery)
	if err != nil {
		return linkd.InvalidField(field, "received_redirect_uri has a malformed query")
	}
	state := q["oauth_state_id"]
	if len(state) != 1 || !oauthStatePattern.MatchString(state[0]) {
		return linkd.InvalidField(field, "received_redirect_uri must carry one oauth_state_id")
	}
	if len(q) != 1 {
		return linkd.InvalidField(field, "received_redirect_uri may carry only oauth_state_id")
	}
	return nil
}

// sameHTTPPlace reports whether g and w, of one scheme, name the same host,
// port and path once normalized as a browser does (WHATWG URL) before the
// app sees the URL: host case, an empty http(s) path is "/", the scheme's
// default port may be given or not.
func sameHTTPPlace(g, w *url.URL) bool {
	defaultPort := map[string]string{"https": "443", "http": "80"}[strings.ToLower(w.Scheme)]
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		return defaultPort
	}
	path := func(u *url.URL) string {
		if p := u.EscapedPath(); p != "" || defaultPort == "" {
			return p
		}
		return "/"
	}
	return strings.EqualFold(g.Hostname(), w.Hostname()) && port(g) == port(w) && path(g) == path(w)
}
