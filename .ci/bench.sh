#!/usr/bin/env bash
# Benchmarks against private ClickHouse and Redis (started like the tests),
# reported as ratios against a baseline measured in the same run, because
# absolute figures on a shared machine mean little.
#
#  1. Go benchmarks: a signed callback through the gateway alone (baseline)
#     and through the whole durable path (dedupe in Redis, fsynced spool,
#     ClickHouse behind it); the spool's group commit (serial vs parallel).
#  2. Load: the simulator's load mode against a running relay binary on
#     ClickHouse and Redis; accepted/s against the rate asked for, and
#     latency percentiles.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/services.sh
relay_pid=""
cleanup() {
	[ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
	services_stop
}
trap cleanup EXIT
services_start
out=$(mktemp)
go test -run '^$' -bench 'BenchmarkCallback' -benchtime "${BENCHTIME:-3s}" -count 1 ./deployments/e2e/ | tee "$out"
go test -run '^$' -bench . -benchtime "${BENCHTIME_STORAGE:-2000x}" -count 1 ./storage/spool/ | tee -a "$out"
go test -run '^$' -bench 'BenchmarkRedisPublish' -benchtime "${BENCHTIME_BUS:-200x}" -count 1 ./storage/bus/ | tee -a "$out"
go test -run '^$' -bench 'BenchmarkRouteBatch|BenchmarkReserveBatch' -benchtime "${BENCHTIME_BUS:-200x}" -count 1 ./storage/state/ | tee -a "$out"
awk '
/^BenchmarkCallback\/baseline/ {base=$3}
/^BenchmarkCallback\/durable/  {dur=$3}
/^BenchmarkAppendSerial/       {ser=$3}
/^BenchmarkAppendParallel/     {par=$3}
/^BenchmarkRedisPublish\/one-by-one/ {one=$3}
/^BenchmarkRedisPublish\/batch/      {bat=$3}
/^BenchmarkRouteBatch\/one-by-one/   {rone=$3}
/^BenchmarkRouteBatch\/batch/        {rbat=$3}
/^BenchmarkReserveBatch\/one-by-one/ {sone=$3}
/^BenchmarkReserveBatch\/batch/      {sbat=$3}
END {
	if (base > 0 && dur > 0)
		printf "\ncallbacks: the durable path costs %.1fx the gateway alone (%d vs %d ns/op)\n", dur/base, dur, base
	if (ser > 0 && par > 0)
		printf "spool: group commit makes parallel appends %.1fx cheaper than serial ones\n", ser/par
	if (one > 0 && bat > 0)
		printf "bus: publishing a writer batch of 500 in one pipelined round trip is %.1fx faster than one PUBLISH each\n", one/bat
	if (rone > 0 && rbat > 0)
		printf "routing: a writer batch of 500 (100 conversations) with one HMGET is %.1fx faster than one HGET each\n", rone/rbat
	if (sone > 0 && sbat > 0)
		printf "sequences: reserving for 100 conversations in one pipelined round trip is %.1fx faster than one call each\n", sone/sbat
}' "$out"
rm -f "$out"

echo
echo "== load: simulator → relay binary (ClickHouse + Redis)"
bin=$(mktemp -d)/wechat-relay
go build -o "$bin" .
data=$(mktemp -d)
relay_port=$(free_port)
WR_LISTEN=127.0.0.1:$relay_port WR_SIM_LISTEN=127.0.0.1:$(free_port) WR_DATA_DIR="$data" \
	WR_CLICKHOUSE_ADDR="$WR_TEST_CLICKHOUSE" WR_CLICKHOUSE_DATABASE=bench_$RANDOM WR_REDIS_ADDR="$WR_TEST_REDIS" \
	WR_LOG_LEVEL=warn "$bin" serve >"$data/relay.out" 2>"$data/relay.err" &
relay_pid=$!
wait_port "$relay_port" 30
rate=${LOAD_RATE:-300}
"$bin" sim -load -relay "http://127.0.0.1:$relay_port/wechat/demo" -clients "${LOAD_CLIENTS:-50}" \
	-rate "$rate" -duration "${LOAD_DURATION:-10s}" | tee "$data/load.json"
python3 - "$data/load.json" "$rate" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1])); asked = float(sys.argv[2])
ms = lambda ns: ns / 1e6
print(f"load: {r['accepted_per_second']:.0f} accepted/s for {asked:.0f}/s asked ({r['accepted_per_second']/asked:.2f}x); "
      f"p50 {ms(r['p50']):.1f} ms, p99 {ms(r['p99']):.1f} ms; {r['accepted']}/{r['sent']} accepted")
PY
