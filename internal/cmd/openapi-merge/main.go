// Command openapi-merge writes openapi/linkd.json: the generated Swagger
// document with openapi/routes.json merged in. make generate runs it after
// buf generate, from the repository's root.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run("gen/openapiv2/linkd.swagger.json", "openapi/routes.json", "openapi/linkd.json"); err != nil {
		fmt.Fprintln(os.Stderr, "openapi-merge:", err)
		os.Exit(1)
	}
}

func run(generated, routes, out string) error {
	g, err := os.ReadFile(generated)
	if err != nil {
		return err
	}
	r, err := os.ReadFile(routes)
	if err != nil {
		return err
	}
	merged, err := Merge(g, r)
	if err != nil {
		return err
	}
	return os.WriteFile(out, merged, 0o644)
}
