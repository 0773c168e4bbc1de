// Package openapitest checks real responses against linkd's OpenAPI
// document: the Swagger 2.0 schemas it declares for each route, with their
// $refs resolved. It validates the subset of Swagger 2.0 that
// protoc-gen-openapiv2 and openapi/routes.json use (type, format, enum,
// properties, additionalProperties, items, required, $ref), and it is
// stricter than JSON Schema in one way on purpose: a field the schema does
// not declare is an error unless additionalProperties allows it, because a
// client generated from the document cannot read such a field.
package openapitest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Doc is a parsed Swagger 2.0 document.
type Doc struct {
	root map[string]any
}

// Parse returns the document in b, or an error when it is not JSON or not
// Swagger 2.0.
func Parse(b []byte) (*Doc, error) {
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		return nil, err
	}
	if root["swagger"] != "2.0" {
		return nil, fmt.Errorf("not a Swagger 2.0 document: swagger = %v", root["swagger"])
	}
	return &Doc{root: root}, nil
}

// Routes returns every operation as "METHOD /path/{pattern}", sorted.
func (d *Doc) Routes() []string {
	var out []string
	paths, _ := d.root["paths"].(map[string]any)
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch":
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Operation returns the operation object of route ("POST /v1/link/token/create"),
// or an error when the document has none.
func (d *Doc) Operation(route string) (map[string]any, error) {
	method, path, ok := strings.Cut(route, " ")
	if !ok {
		return nil, fmt.Errorf("route %q is not \"METHOD /path\"", route)
	}
	paths, _ := d.root["paths"].(map[string]any)
	item, _ := paths[path].(map[string]any)
	op, _ := item[strings.ToLower(method)].(map[string]any)
	if op == nil {
		return nil, fmt.Errorf("the document declares no %s", route)
	}
	return op, nil
}

// ValidateResponse checks body, answered with status to a call of route,
// against the schema the document declares for that status (or its
// "default" response). It returns an error naming the first mismatch by its
// JSON path.
func (d *Doc) ValidateResponse(route string, status int, body []byte) error {
	op, err := d.Operation(route)
	if err != nil {
		return err
	}
	responses, _ := op["responses"].(map[string]any)
	resp, ok := responses[strconv.Itoa(status)].(map[string]any)
	if !ok {
		if resp, ok = responses["default"].(map[string]any); !ok {
			return fmt.Errorf("%s declares no %d response and no default", route, status)
		}
	}
	schema, ok := resp["schema"].(map[string]any)
	if !ok {
		if len(bytes.TrimSpace(body)) > 0 {
			return fmt.Errorf("%s %d declares no body, got %s", route, status, body)
		}
		return nil
	}
	return d.Validate(schema, body)
}

// Validate checks the JSON in body against schema.
func (d *Doc) Validate(schema map[string]any, body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	return d.check("$", schema, v, 0)
}

// resolve follows $ref to a local "#/..." JSON pointer.
func (d *Doc) resolve(schema map[string]any) (map[string]any, error) {
	for range 32 {
		ref, ok := schema["$ref"].(string)
		if !ok {
			return schema, nil
		}
		ptr, ok := strings.CutPrefix(ref, "#/")
		if !ok {
			return nil, fmt.Errorf("$ref %q is not local", ref)
		}
		var node any = d.root
		for _, part := range strings.Split(ptr, "/") {
			part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
			m, _ := node.(map[string]any)
			if node = m[part]; node == nil {
				return nil, fmt.Errorf("$ref %q resolves to nothing", ref)
			}
		}
		if schema, ok = node.(map[string]any); !ok {
			return nil, fmt.Errorf("$ref %q is not a schema", ref)
		}
	}
	return nil, fmt.Errorf("$ref chain too long")
}

func (d *Doc) check(at string, schema map[string]any, v any, depth int) error {
	if depth > 64 {
		return fmt.Errorf("%s: nested too deep", at)
	}
	schema, err := d.resolve(schema)
	if err != nil {
		return fmt.Errorf("%s: %w", at, err)
	}
	typ, _ := schema["type"].(string)
	if typ == "" && (schema["properties"] != nil || schema["additionalProperties"] != nil) {
		typ = "object"
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		return fmt.Errorf("%s: %v is not one of %v", at, v, enum)
	}
	format, _ := schema["format"].(string)
	switch typ {
	case "":
		return nil // any value
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %T", at, v)
		}
		props, _ := schema["properties"].(map[string]any)
		for _, name := range sortedKeys(obj) {
			if p, ok := props[name].(map[string]any); ok {
				if err := d.check(at+"."+name, p, obj[name], depth+1); err != nil {
					return err
				}
				continue
			}
			switch extra := schema["additionalProperties"].(type) {
			case bool:
				if extra {
					continue
				}
			case map[string]any:
				if err := d.check(at+"["+strconv.Quote(name)+"]", extra, obj[name], depth+1); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("%s: field %q is not declared by the schema", at, name)
		}
		required, _ := schema["required"].([]any)
		for _, r := range required {
			if _, ok := obj[fmt.Sprint(r)]; !ok {
				return fmt.Errorf("%s: required field %q is missing", at, r)
			}
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: want an array, got %T", at, v)
		}
		items, _ := schema["items"].(map[string]any)
		for i, e := range arr {
			if err := d.check(fmt.Sprintf("%s[%d]", at, i), items, e, depth+1); err != nil {
				return err
			}
		}
	case "string":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: want a string, got %T %v", at, v, v)
		}
		switch format {
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return fmt.Errorf("%s: %q is not a date-time", at, s)
			}
		case "int64":
			if _, err := strconv.ParseInt(s, 10, 64); err != nil {
				return fmt.Errorf("%s: %q is not an int64", at, s)
			}
		case "uint64":
			if _, err := strconv.ParseUint(s, 10, 64); err != nil {
				return fmt.Errorf("%s: %q is not a uint64", at, s)
			}
		case "byte":
			if _, err := base64.StdEncoding.DecodeString(s); err != nil {
				if _, err := base64.URLEncoding.DecodeString(s); err != nil {
					return fmt.Errorf("%s: %q is not base64", at, s)
				}
			}
		}
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("%s: want an integer, got %T %v", at, v, v)
		}
		if _, err := n.Int64(); err != nil {
			return fmt.Errorf("%s: %s is not an integer", at, n)
		}
	case "number":
		if _, ok := v.(json.Number); !ok {
			return fmt.Errorf("%s: want a number, got %T %v", at, v, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: want a boolean, got %T %v", at, v, v)
		}
	default:
		return fmt.Errorf("%s: schema type %q is not supported", at, typ)
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
