# linkd's front door. CI (.ci/run) calls these same targets.
SHELL := bash
BUF := go tool -modfile=tools/go.mod buf
# Fuzz budgets are execution counts, not durations: a duration races Go
# 1.26's fuzz coordinator at its deadline (golang/go#75804) and fails with a
# bare "context deadline exceeded" and no crasher. About 20 s each here.
FUZZ_PARSE ?= 200000x
FUZZ_REST ?= 40000x
FUZZ_WEBHOOK ?= 200000x

CYCLES ?= 500

.PHONY: help run test race generate checkgenerate lint fuzz bench crash ci

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: ## start linkd on its embedded defaults (Plaid emulator, ./data)
	go run ./cmd/linkd

test: ## run every test (the README's test command)
	go test ./...

race: ## every test under the race detector (needs cgo: gcc)
	CGO_ENABLED=1 go test -race ./...

generate: ## delete and regenerate gen/ from proto/
	$(BUF) generate

checkgenerate: generate ## fail when gen/ is not what proto/ generates
	@test -z "$$(git status --porcelain -- gen)" || { git status --porcelain -- gen; git diff --stat -- gen; echo "gen/ is stale: run make generate and commit"; exit 1; }

lint: ## buf lint, gofmt and go vet
	$(BUF) lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); echo "gofmt needed"; exit 1; }
	go vet ./...

fuzz: ## a short run of every fuzz target (FUZZ_PARSE=200000x FUZZ_REST=40000x FUZZ_WEBHOOK=200000x executions)
	go test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZ_PARSE) -timeout=15m ./redirect/
	go test -run='^$$' -fuzz='^FuzzREST$$' -fuzztime=$(FUZZ_REST) -timeout=15m ./cmd/linkd/
	go test -run='^$$' -fuzz='^FuzzVerify$$' -fuzztime=$(FUZZ_WEBHOOK) -timeout=15m ./webhook/

crash: ## SIGKILL/restart cycles against a real linkd process (CYCLES=500)
	go test -count=1 -run='^TestLinkd_CrashRecovery$$' -v -timeout=60m ./cmd/linkd/ -args -crash.cycles=$(CYCLES)

bench: ## the benchmarks behind BENCHMARKS.md
	go test -run='^$$' -bench=. -benchmem ./redirect/ ./store/ ./webhook/
	go test -run='^$$' -bench=Linkd -benchtime=2s -benchmem ./cmd/linkd/

ci: lint checkgenerate test race fuzz ## everything CI runs
