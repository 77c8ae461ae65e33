#!/usr/bin/env bash
# Benchmarks against private ClickHouse and Redis (started like the tests),
# reported as ratios against a baseline measured in the same run, because
# absolute figures on a shared machine mean little.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/services.sh
trap services_stop EXIT
services_start
out=$(mktemp)
go test -run '^$' -bench 'BenchmarkCallback' -benchtime "${BENCHTIME:-3s}" -count 1 . | tee "$out"
go test -run '^$' -bench . -benchtime "${BENCHTIME_STORAGE:-2000x}" -count 1 ./storage/spool/ | tee -a "$out"
awk '
/BenchmarkCallback\/baseline/ {base=$3}
/BenchmarkCallback\/durable/  {dur=$3}
END {
	if (base > 0 && dur > 0)
		printf "\ncallbacks: durable path costs %.1fx the gateway alone (%d vs %d ns/op)\n", dur/base, dur, base
}' "$out"
rm -f "$out"
