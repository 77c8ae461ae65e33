# wechat-relay — `make help` lists the targets.
BIN := bin/wechat-relay
GO ?= go

.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the wechat-relay binary into bin/
	$(GO) build -o $(BIN) .

run: ## run the relay with embedded defaults (nothing to install)
	$(GO) run . serve

test: ## run every test (starts private ClickHouse and Redis; installs them as root if missing)
	bash .ci/test.sh

test-unit: ## run the tests that need no services
	$(GO) test -race -short ./...

bench: ## run the benchmarks
	bash .ci/bench.sh

fuzz: ## run each fuzz target briefly (FUZZTIME=20s by default)
	bash .ci/fuzz.sh

lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi

.PHONY: help build run test test-unit bench fuzz lint

chaos: ## the chaos suite: two relays under faults, then a check that nothing was lost (N=1000000 for the long run)
	@command -v clickhouse-server >/dev/null && command -v redis-server >/dev/null || bash -c 'source .ci/services.sh && services_install'
	WR_CHAOS=1 $(if $(N),WR_CHAOS_N=$(N)) $(GO) test -count=1 -v -timeout $(CHAOS_TIMEOUT) -run 'TestChaos$$' ./deployments/chaos/

CHAOS_TIMEOUT ?= 12h
.PHONY: chaos

bench-e2e: ## the end-to-end benchmark: the relay binary on ClickHouse and Redis against its own ceiling, in one run (docs/performance.md)
	@command -v clickhouse-server >/dev/null && command -v redis-server >/dev/null || bash -c 'source .ci/services.sh && services_install'
	WR_BENCH_E2E=1 $(GO) test -count=1 -v -timeout 30m -run 'TestBenchE2E$$' ./deployments/chaos/
.PHONY: bench-e2e
