package plaidemu

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// Transport returns an http.RoundTripper that serves each request with
// the emulator's ServeHTTP in the calling goroutine, without a socket: for
// a Plaid client in the emulator's own process (linkd's embedded
// emulator). A call then costs no loopback connection, no HTTP framing on
// either side, and no wait for Go's network poller, which a process whose
// processors are all busy consults only every 10 ms or when one runs out
// of work (under load, two such waits were a fifth of a connected link's
// latency). The answer is the one ServeHTTP writes, byte for byte, with
// its status and headers; a request it answers with nothing
// (HangAfterNext) fails with the request context's error once that ends,
// as over a connection. It returns an error for a request without a URL.
func (e *Emulator) Transport() http.RoundTripper { return inProcess{e} }

// inProcess is Transport's RoundTripper.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close() // a RoundTripper closes the body, whatever happens
	}
	if req.URL == nil {
		return nil, errors.New("plaidemu: request without a URL")
	}
	// The handler gets a request as a server would build it: a body that
	// is never nil, the path as RequestURI.
	in := *req
	if in.Body == nil {
		in.Body = http.NoBody
	}
	in.RequestURI = req.URL.RequestURI()
	w := &answerWriter{header: make(http.Header)}
	t.h.ServeHTTP(w, &in)
	if !w.wrote {
		if err := req.Context().Err(); err != nil {
			return nil, err
		}
		w.WriteHeader(http.StatusOK) // what net/http sends for a handler that writes nothing
	}
	return &http.Response{
		Status:        strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.header,
		Body:          io.NopCloser(bytes.NewReader(w.body)),
		ContentLength: int64(len(w.body)),
		Request:       req,
	}, nil
}

// answerWriter is the http.ResponseWriter of an in-process request: it
// keeps the status, headers and a copy of the body (ServeHTTP reuses its
// buffer once it returns).
type answerWriter struct {
	header http.Header
	status int
	wrote  bool
	body   []byte
}

func (w *answerWriter) Header() http.Header { return w.header }

func (w *answerWriter) WriteHeader(status int) {
	if w.wrote {
		return
	}
	w.wrote, w.status = true, status
	// Later changes to the map must not reach the answer, as over a
	// connection, where the header is sent by now.
	w.header = w.header.Clone()
}

func (w *answerWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	w.body = append(w.body, p...)
	return len(p), nil
}
