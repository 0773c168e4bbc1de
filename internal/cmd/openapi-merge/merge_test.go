package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMerge(t *testing.T) {
	gen := `{"swagger":"2.0","tags":[{"name":"A"}],"paths":{"/v1/a":{"get":{}}},"definitions":{"A":{}}}`
	t.Run("OK", func(t *testing.T) {
		out, err := Merge([]byte(gen), []byte(`{"swagger":"2.0","tags":[{"name":"B"}],"paths":{"/v1/a":{"post":{}},"/b":{"get":{}}},"definitions":{"B":{}}}`))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Tags        []map[string]string
			Paths       map[string]map[string]any
			Definitions map[string]any
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Tags) != 2 || len(doc.Paths["/v1/a"]) != 2 || doc.Paths["/b"] == nil || len(doc.Definitions) != 2 {
			t.Errorf("merged = %s", out)
		}
	})
	for _, tt := range []struct{ name, routes, err string }{
		{"DuplicateMethod", `{"swagger":"2.0","paths":{"/v1/a":{"get":{}}}}`, "get /v1/a is declared twice"},
		{"DuplicateDefinition", `{"swagger":"2.0","definitions":{"A":{}}}`, "definition A is declared twice"},
		{"NotSwagger2", `{"openapi":"3.0.0"}`, "Swagger 2.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Merge([]byte(gen), []byte(tt.routes)); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
		})
	}
}
