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

# make breaking compares the protos with this commit (a branch's base:
# make breaking BREAKING_AGAINST=origin/main).
BREAKING_AGAINST ?= HEAD~1

# make load: TRANSPORT=grpc|rest|quickstart, C concurrent callers, D per
# scenario, LOAD_ARGS for the rest (-scenario parse,exchange -json ...).
# make load-compare: QUICKSTART=the quickstart binary that
# scripts/quickstart-emulator.sh built, ROUNDS of the comparison.
TRANSPORT ?= grpc
C ?= 16
D ?= 10s
LOAD_ARGS ?=
QUICKSTART ?=
ROUNDS ?= 3

.PHONY: help run test race generate checkgenerate lint breaking examples deploytest fuzz bench load load-compare crash ci

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: ## start linkd on its embedded defaults (Plaid emulator, ./data)
	go run ./cmd/linkd

test: ## run every test (the README's test command)
	go test ./...

race: ## every test under the race detector (needs cgo: gcc)
	CGO_ENABLED=1 go test -race ./...

generate: ## delete and regenerate gen/ from proto/, and openapi/linkd.json
	$(BUF) generate
	go run ./internal/cmd/openapi-merge

checkgenerate: generate ## fail when gen/ is not what proto/ generates
	@test -z "$$(git status --porcelain -- gen openapi/linkd.json)" || { git status --porcelain -- gen openapi/linkd.json; git diff --stat -- gen openapi/linkd.json; echo "gen/ or openapi/linkd.json is stale: run make generate and commit"; exit 1; }

lint: ## buf lint, gofmt and go vet
	$(BUF) lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); echo "gofmt needed"; exit 1; }
	go vet ./...

breaking: ## buf breaking against BREAKING_AGAINST (HEAD~1): WIRE_JSON for linkd.v1, WIRE for storage
	@if ! git rev-parse -q --verify '$(BREAKING_AGAINST)^{commit}' >/dev/null; then \
	  echo "breaking: $(BREAKING_AGAINST) is not in this clone (first commit or shallow clone: fetch with --depth=2 or more); skipped"; \
	elif ! git cat-file -e '$(BREAKING_AGAINST):buf.yaml' 2>/dev/null; then \
	  echo "breaking: $(BREAKING_AGAINST) has no buf.yaml, nothing to compare with; skipped"; \
	else \
	  $(BUF) breaking --against '.git#ref=$(BREAKING_AGAINST)'; \
	fi

examples: ## run the Node and Java client examples against a real linkd (needs node, npm, a JDK and Debian's gRPC jars)
	cd examples/node && npm ci --no-audit --no-fund
	examples/java/build.sh
	LINKD_EXAMPLES=1 go test -count=1 -run='^TestExamples$$' -v ./cmd/linkd/

deploytest: ## build the static (CGO_ENABLED=0) binary and run it as nobody on a read-only root (needs root)
	LINKD_DEPLOY_TEST=1 go test -count=1 -run='^TestLinkd_StaticNonRoot$$' -v ./cmd/linkd/

fuzz: ## a short run of every fuzz target (FUZZ_PARSE=200000x FUZZ_REST=40000x FUZZ_WEBHOOK=200000x executions)
	go test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZ_PARSE) -timeout=15m ./redirect/
	go test -run='^$$' -fuzz='^FuzzREST$$' -fuzztime=$(FUZZ_REST) -timeout=15m ./cmd/linkd/
	go test -run='^$$' -fuzz='^FuzzVerify$$' -fuzztime=$(FUZZ_WEBHOOK) -timeout=15m ./webhook/

crash: ## SIGKILL/restart cycles against a real linkd process (CYCLES=500)
	go test -count=1 -run='^TestLinkd_CrashRecovery$$' -v -timeout=60m ./cmd/linkd/ -args -crash.cycles=$(CYCLES)

bench: ## the benchmarks behind BENCHMARKS.md
	go test -run='^$$' -bench=. -benchmem ./redirect/ ./store/ ./webhook/
	go test -run='^$$' -bench=. -benchtime=2000x -benchmem ./postgres/
	go test -run='^$$' -bench=Linkd -benchtime=2s -benchmem ./cmd/linkd/

load: ## drive a running linkd (make run) with every scenario (TRANSPORT=grpc C=16 D=10s LOAD_ARGS=)
	go run ./cmd/linkd-load -transport $(TRANSPORT) -c $(C) -d $(D) $(LOAD_ARGS)

load-compare: ## linkd against Plaid's quickstart on one emulator, BENCHMARKS.md's table (QUICKSTART=bin ROUNDS=3)
	@test -n "$(QUICKSTART)" || { echo "set QUICKSTART to the binary scripts/quickstart-emulator.sh built"; exit 1; }
	scripts/load-compare.sh $(QUICKSTART) $(ROUNDS)

ci: lint checkgenerate breaking test race fuzz ## everything CI runs
