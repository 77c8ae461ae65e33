#!/usr/bin/env bash
# Run by the clickhouse/clickhouse-server image's entrypoint at the first
# start of an empty data directory (it sources or executes every script in
# /docker-entrypoint-initdb.d), while the server listens on 127.0.0.1 only.
#
# 1. Applies the relay's schema migrations as the admin user
#    (deployments/clickhouse/apply-migrations.sh), so the relay's own user
#    needs no ALTER.
# 2. Creates the users and roles of deployments/clickhouse/grants.sql, on
#    this single server: ON CLUSTER removed, password hashes filled in from
#    the Docker secrets.
#
# After an upgrade that brings a new migration, run step 1 again:
#   docker compose -f deployments/docker-compose.yml exec clickhouse \
#       bash /docker-entrypoint-initdb.d/10-wechat-relay.sh
set -euo pipefail

relay_pw_file=/run/secrets/clickhouse_relay_password
migrate_pw_file=/run/secrets/clickhouse_migrate_password
for f in "$relay_pw_file" "$migrate_pw_file"; do
    if [[ ! -s $f ]]; then
        echo "10-wechat-relay.sh: $f is missing or empty; run deployments/compose/make-secrets.sh" >&2
        exit 1
    fi
done

CH_HOST=127.0.0.1 CH_PORT=9000 CH_USER="${CLICKHOUSE_USER:-default}" CH_PASSWORD="${CLICKHOUSE_PASSWORD:-}" \
WR_DATABASE=wechat_relay MIGRATIONS_DIR=/opt/wechat-relay/migrations \
    bash /opt/wechat-relay/clickhouse/apply-migrations.sh

hash() { tr -d '\r\n' <"$1" | sha256sum | cut -d' ' -f1; }
sed -e "s/ ON CLUSTER '{cluster}'//g" \
    -e "s/__WECHAT_RELAY_PASSWORD_SHA256__/$(hash "$relay_pw_file")/" \
    -e "s/__WECHAT_RELAY_MIGRATE_PASSWORD_SHA256__/$(hash "$migrate_pw_file")/" \
    /opt/wechat-relay/clickhouse/grants.sql |
    clickhouse-client --host 127.0.0.1 --user "${CLICKHOUSE_USER:-default}" --password "${CLICKHOUSE_PASSWORD:-}" --multiquery
echo "10-wechat-relay.sh: schema applied, users wechat_relay and wechat_relay_migrate ready"
