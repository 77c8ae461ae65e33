#!/usr/bin/env bash
# Private ClickHouse and Redis for the test suite: installed when missing
# (Debian, as root), started in a temporary directory on free loopback
# ports, stopped by their process ids.
#
#   source .ci/services.sh && services_start   # exports WR_TEST_CLICKHOUSE, WR_TEST_REDIS
#   services_stop
set -u

services_install() {
	local missing=()
	command -v clickhouse-server >/dev/null || missing+=(clickhouse-server clickhouse-client)
	command -v redis-server >/dev/null || missing+=(redis-server)
	command -v chromium >/dev/null || missing+=(chromium fonts-noto-cjk)
	command -v nginx >/dev/null || missing+=(nginx-light)
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "services: missing ${missing[*]}; install them (apt-get install -y ${missing[*]}) or run as root" >&2
		return 1
	fi
	echo "services: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# Packages must not start their own servers (nginx would take port
	# 80): the tests start what they need, on free ports.
	local deny=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && deny=1
	fi
	local rc=0
	apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null || rc=$?
	[ -n "$deny" ] && rm -f /usr/sbin/policy-rc.d
	return $rc
}

# free_port prints a loopback TCP port nobody listens on.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

wait_port() { # port seconds
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

services_start() {
	services_install || return 1
	SERVICES_DIR=$(mktemp -d /tmp/wechat-relay-services.XXXXXX)
	export SERVICES_DIR
	local ch_port ch_http redis_port
	ch_port=$(free_port)
	ch_http=$(free_port)
	redis_port=$(free_port)

	mkdir -p "$SERVICES_DIR"/ch/{data,tmp,user_files,format_schemas,log}
	cp /etc/clickhouse-server/users.xml "$SERVICES_DIR/ch/users.xml"
	cat >"$SERVICES_DIR/ch/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$SERVICES_DIR/ch/log/server.log</log>
        <errorlog>$SERVICES_DIR/ch/log/error.log</errorlog>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$ch_port</tcp_port>
    <http_port>$ch_http</http_port>
    <path>$SERVICES_DIR/ch/data/</path>
    <tmp_path>$SERVICES_DIR/ch/tmp/</tmp_path>
    <user_files_path>$SERVICES_DIR/ch/user_files/</user_files_path>
    <format_schema_path>$SERVICES_DIR/ch/format_schemas/</format_schema_path>
    <users_config>$SERVICES_DIR/ch/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>200</max_concurrent_queries>
</yandex>
XML
	clickhouse-server --config-file="$SERVICES_DIR/ch/config.xml" >"$SERVICES_DIR/ch/log/stdout.log" 2>&1 &
	echo $! >"$SERVICES_DIR/clickhouse.pid"
	redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$SERVICES_DIR" --save '' --appendonly no \
		>"$SERVICES_DIR/redis.log" 2>&1 &
	echo $! >"$SERVICES_DIR/redis.pid"

	if ! wait_port "$redis_port" 20; then
		echo "services: redis did not start; see $SERVICES_DIR/redis.log" >&2
		return 1
	fi
	if ! wait_port "$ch_port" 60; then
		echo "services: clickhouse did not start:" >&2
		tail -20 "$SERVICES_DIR/ch/log/error.log" "$SERVICES_DIR/ch/log/stdout.log" >&2
		return 1
	fi
	export WR_TEST_CLICKHOUSE="127.0.0.1:$ch_port"
	export WR_TEST_CLICKHOUSE_HTTP="127.0.0.1:$ch_http"
	export WR_TEST_REDIS="127.0.0.1:$redis_port"
	# The fault tests stop and restart the servers; they need to know how.
	export WR_TEST_CLICKHOUSE_CONFIG="$SERVICES_DIR/ch/config.xml"
	export WR_TEST_CLICKHOUSE_PIDFILE="$SERVICES_DIR/clickhouse.pid"
	echo "services: clickhouse $WR_TEST_CLICKHOUSE, redis $WR_TEST_REDIS ($SERVICES_DIR)" >&2
}

services_stop() {
	[ -n "${SERVICES_DIR:-}" ] && [ -d "$SERVICES_DIR" ] || return 0
	local f pid
	for f in "$SERVICES_DIR"/*.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || true
	done
	for f in "$SERVICES_DIR"/*.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	done
	rm -rf "$SERVICES_DIR"
}
