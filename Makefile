# linkd's front door. CI (.ci/run) calls these same targets.
SHELL := bash
BUF := go tool -modfile=tools/go.mod buf
# Fuzz budgets are execution counts, not durations: a duration races Go
# 1.26's fuzz coordinator at its deadline (golang/go#75804) and fails with a
# bare "context deadline exceeded" and no crasher. About 20 s each here.
FUZZ_PARSE ?= 200000x
FUZZ_REST ?= 40000x

CYCLES ?= 500

# make load: TRANSPORT=grpc|rest, C concurrent callers, D per scenario,
# LOAD_ARGS for the rest (-scenario parse,exchange -json ...).
TRANSPORT ?= grpc
C ?= 16
D ?= 10s
LOAD_ARGS ?=

.PHONY: help run test race generate checkgenerate lint fuzz bench load crash ci

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

fuzz: ## a short run of every fuzz target (FUZZ_PARSE=200000x FUZZ_REST=40000x executions)
	go test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZ_PARSE) -timeout=15m ./redirect/
	go test -run='^$$' -fuzz='^FuzzREST$$' -fuzztime=$(FUZZ_REST) -timeout=15m ./cmd/linkd/

crash: ## SIGKILL/restart cycles against a real linkd process (CYCLES=500)
	go test -count=1 -run='^TestLinkd_CrashRecovery$$' -v -timeout=60m ./cmd/linkd/ -args -crash.cycles=$(CYCLES)

bench: ## the benchmarks behind BENCHMARKS.md
	go test -run='^$$' -bench=. -benchmem ./redirect/ ./store/
	go test -run='^$$' -bench=Linkd -benchtime=2s -benchmem ./cmd/linkd/

load: ## drive a running linkd (make run) with every scenario (TRANSPORT=grpc C=16 D=10s LOAD_ARGS=)
	go run ./cmd/linkd-load -transport $(TRANSPORT) -c $(C) -d $(D) $(LOAD_ARGS)

ci: lint checkgenerate test race fuzz ## everything CI runs
