package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Merge returns the generated Swagger 2.0 document with the paths,
// definitions and tags of routes added: the routes linkd serves that are not
// RPCs, which protoc-gen-openapiv2 cannot know. A path, method or definition
// both declare is an error, not an override: neither may hide the other.
// Keys come out sorted, so the result is the same for the same inputs.
func Merge(generated, routes []byte) ([]byte, error) {
	var doc, add map[string]any
	if err := json.Unmarshal(generated, &doc); err != nil {
		return nil, fmt.Errorf("generated document: %w", err)
	}
	if err := json.Unmarshal(routes, &add); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	if doc["swagger"] != "2.0" || add["swagger"] != "2.0" {
		return nil, fmt.Errorf("both documents must be Swagger 2.0")
	}
	for _, section := range []string{"paths", "definitions"} {
		into, _ := doc[section].(map[string]any)
		if into == nil {
			into = map[string]any{}
			doc[section] = into
		}
		from, _ := add[section].(map[string]any)
		for _, key := range sortedKeys(from) {
			if section == "paths" {
				if err := mergePath(into, key, from[key]); err != nil {
					return nil, err
				}
				continue
			}
			if _, dup := into[key]; dup {
				return nil, fmt.Errorf("definition %s is declared twice", key)
			}
			into[key] = from[key]
		}
	}
	if tags, ok := add["tags"].([]any); ok {
		have, _ := doc["tags"].([]any)
		doc["tags"] = append(have, tags...)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// mergePath adds the operations of item to paths[path], refusing a method
// the path already has.
func mergePath(paths map[string]any, path string, item any) error {
	ops, ok := item.(map[string]any)
	if !ok {
		return fmt.Errorf("path %s is not an object", path)
	}
	have, _ := paths[path].(map[string]any)
	if have == nil {
		paths[path] = ops
		return nil
	}
	for _, method := range sortedKeys(ops) {
		if _, dup := have[method]; dup {
			return fmt.Errorf("%s %s is declared twice", method, path)
		}
		have[method] = ops[method]
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
