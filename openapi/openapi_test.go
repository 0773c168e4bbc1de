package openapi_test

import (
	"encoding/json"
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/linkd/linkd/openapi"
	"github.com/linkd/linkd/openapi/openapitest"
)

var update = flag.Bool("update", false, "rewrite testdata/routes.golden from the document")

// TestDocument_Routes compares the document's route table with
// testdata/routes.golden, so that a REST route cannot vanish or appear
// without a reviewed change to that file (go test ./openapi/ -args -update rewrites it).
func TestDocument_Routes(t *testing.T) {
	doc, err := openapitest.Parse(openapi.Document())
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(doc.Routes(), "\n") + "\n"
	if *update {
		if err := os.WriteFile("testdata/routes.golden", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/routes.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("routes differ from testdata/routes.golden (go test ./openapi/ -args -update rewrites it):\ngot:\n%swant:\n%s", got, want)
	}
}

// TestDocument_HTTPRules checks that every rule of link_http.yaml, the
// file grpc-gateway serves from, is in the document with the same method
// and path pattern.
func TestDocument_HTTPRules(t *testing.T) {
	doc, err := openapitest.Parse(openapi.Document())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../proto/linkd/v1/link_http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules := regexp.MustCompile(`(?m)^\s+(get|put|post|delete|patch):\s+(\S+)\s*$`).FindAllStringSubmatch(string(b), -1)
	if len(rules) == 0 {
		t.Fatal("no rules read from link_http.yaml")
	}
	routes := doc.Routes()
	for _, r := range rules {
		route := strings.ToUpper(r[1]) + " " + r[2]
		if !slices.Contains(routes, route) {
			t.Errorf("link_http.yaml serves %s; the document does not declare it", route)
		}
	}
}

// TestDocument_NoCamelCase guards the bug json_names_for_fields=false
// fixed: the gateway sends proto names, so no declared property may be
// lowerCamelCase.
func TestDocument_NoCamelCase(t *testing.T) {
	camel := regexp.MustCompile(`^[a-z]+[A-Z]`)
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if props, ok := v["properties"].(map[string]any); ok {
				for name := range props {
					if camel.MatchString(name) {
						t.Errorf("%s: property %q is camelCase; the gateway sends proto names", at, name)
					}
				}
			}
			for k, e := range v {
				walk(at+"/"+k, e)
			}
		case []any:
			for _, e := range v {
				walk(at, e)
			}
		}
	}
	var root map[string]any
	if err := json.Unmarshal(openapi.Document(), &root); err != nil {
		t.Fatal(err)
	}
	walk("#", root)
}
