#!/usr/bin/env bash
# The whole test suite: starts private ClickHouse and Redis (installing
# them first when missing), runs vet and the race-enabled tests, and stops
# the services whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/services.sh
trap services_stop EXIT
services_start
echo "== go vet" >&2
go vet ./...
echo "== gofmt" >&2
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
echo "== go test -race" >&2
go test -race -count=1 -timeout 8m "$@" ./...
WR_CHAOS=1 go test -race -count=1 -timeout 10m -v -run 'TestChaos$' ./deployments/chaos/ # the chaos suite's short schedule, on its own (docs/chaos.md)
