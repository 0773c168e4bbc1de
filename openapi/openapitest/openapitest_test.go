package openapitest

import (
	"strings"
	"testing"
)

const testDoc = `{
  "swagger": "2.0",
  "paths": {
    "/v1/things/{id}": {"get": {"responses": {
      "200": {"schema": {"$ref": "#/definitions/Thing"}},
      "default": {"schema": {"$ref": "#/definitions/Status"}}}}}
  },
  "definitions": {
    "Thing": {"type": "object", "properties": {
      "id": {"type": "string"},
      "count": {"type": "string", "format": "int64"},
      "at": {"type": "string", "format": "date-time"},
      "kind": {"type": "string", "enum": ["A", "B"]},
      "tags": {"type": "array", "items": {"type": "string"}},
      "by_kind": {"type": "object", "additionalProperties": {"type": "string", "format": "int64"}},
      "ok": {"type": "boolean"},
      "rate": {"type": "number", "format": "double"}
    }, "required": ["id"]},
    "Status": {"type": "object", "properties": {"code": {"type": "integer"}, "message": {"type": "string"},
      "details": {"type": "array", "items": {"type": "object", "$ref": "#/definitions/Any"}}}},
    "Any": {"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": true}
  }
}`

func TestDoc_ValidateResponse(t *testing.T) {
	doc, err := Parse([]byte(testDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, body string
		status     int
		err        string // a substring of the error; "" for valid
	}{
		{"OK", `{"id":"x","count":"12","at":"2026-12-01T10:00:00.5Z","kind":"A","tags":["a"],"by_kind":{"A":"1"},"ok":true,"rate":0.5}`, 200, ""},
		{"OnlyRequired", `{"id":"x"}`, 200, ""},
		{"CamelCase", `{"id":"x","byKind":{}}`, 200, `field "byKind" is not declared`},
		{"MissingRequired", `{"count":"1"}`, 200, `required field "id"`},
		{"Int64AsNumber", `{"id":"x","count":12}`, 200, "want a string"},
		{"Int64NotDigits", `{"id":"x","count":"1.5"}`, 200, "not an int64"},
		{"BadDateTime", `{"id":"x","at":"yesterday"}`, 200, "not a date-time"},
		{"NotInEnum", `{"id":"x","kind":"C"}`, 200, "not one of"},
		{"MapValue", `{"id":"x","by_kind":{"A":1}}`, 200, `$.by_kind["A"]`},
		{"ArrayItem", `{"id":"x","tags":[1]}`, 200, "$.tags[0]"},
		{"Error", `{"code":3,"message":"bad","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","field_violations":[]}]}`, 400, ""},
		{"ErrorCodeString", `{"code":"3"}`, 404, "want an integer"},
		{"NotJSON", `<html>`, 200, "not JSON"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := doc.ValidateResponse("GET /v1/things/{id}", tt.status, []byte(tt.body))
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("err = %v, want one containing %q", err, tt.err)
			}
		})
	}
	if err := doc.ValidateResponse("POST /v1/things/{id}", 200, []byte(`{}`)); err == nil {
		t.Error("an undeclared route validated")
	}
	if got := doc.Routes(); len(got) != 1 || got[0] != "GET /v1/things/{id}" {
		t.Errorf("Routes() = %q", got)
	}
}
