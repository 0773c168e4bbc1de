package plaid

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/linkd/linkd"
)

// Call is one HTTP request to Plaid, as Config.Observe sees it: never a
// token or a user id.
type Call struct {
	// Endpoint is the URL path, e.g. /item/public_token/exchange.
	Endpoint string
	// ErrorCode is Plaid's error_code; "" on success, HTTP_<status> for an
	// error without one, NO_RESPONSE when Plaid did not answer.
	ErrorCode string
	// RequestID is Plaid's request_id, "" without an answer.
	RequestID string
	Duration  time.Duration
}

// maxObservedBody bounds how much of a Plaid response observeTransport
// reads to find its request_id and error_code; linkd's calls answer far
// less.
const maxObservedBody = 4 << 20

// observeTransport reports every request to Plaid to observe and records
// Plaid's request_id in the call's linkd.CallInfo, so that the call's log
// lines name it.
type observeTransport struct {
	next    http.RoundTripper
	observe func(Call)
}

func (t observeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	call := Call{Endpoint: req.URL.Path}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		call.ErrorCode, call.Duration = "NO_RESPONSE", time.Since(start)
		t.report(call)
		return nil, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxObservedBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	call.Duration = time.Since(start)
	var fields struct {
		RequestID string `json:"request_id"`
		ErrorCode string `json:"error_code"`
	}
	json.Unmarshal(body, &fields) // a body that is not JSON has neither
	call.RequestID, call.ErrorCode = fields.RequestID, fields.ErrorCode
	switch {
	case rerr != nil:
		call.ErrorCode = "NO_RESPONSE"
	case resp.StatusCode >= 400 && call.ErrorCode == "":
		call.ErrorCode = "HTTP_" + strconv.Itoa(resp.StatusCode)
	}
	linkd.CallInfoFrom(req.Context()).AddPlaidRequestID(call.RequestID)
	t.report(call)
	if rerr != nil {
		return nil, rerr
	}
	return resp, nil
}

func (t observeTransport) report(c Call) {
	if t.observe != nil {
		t.observe(c)
	}
}

// CloseIdleConnections passes Client.Close on to the transport beneath.
func (t observeTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
