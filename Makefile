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
