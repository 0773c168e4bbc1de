// Package openapi holds linkd's REST API description, a Swagger 2.0
// document: what protoc-gen-openapiv2 generates from the protos and
// link_http.yaml (gen/openapiv2/linkd.swagger.json), merged with routes.json,
// the hand-written routes that are not RPCs. make generate writes the merge
// to linkd.json, which is embedded here and served at GET /openapi.json.
package openapi

import (
	_ "embed"
	"net/http"
	"strconv"
)

// Path is where linkd serves the document, on its HTTP listener, with no
// credential: a client generator needs it before it has a key.
const Path = "/openapi.json"

//go:embed linkd.json
var document []byte

// Document returns a copy of the merged document.
func Document() []byte {
	return append([]byte(nil), document...)
}

// Handler serves the document as application/json.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(document)))
		w.Write(document)
	})
}
