#!/usr/bin/env bash
# Applies the relay's own schema migrations to ONE ClickHouse server, as a
# privileged user, the way the binary would (storage/archive/migrate.go):
# each storage/archive/migrations/NNNN_*.sql not yet listed in
# schema_migrations is run, then recorded with the file's SHA-256. The
# relay, started afterwards with its least-privilege user, finds every
# version applied and changes nothing.
#
# For a single server (the compose stack runs it at ClickHouse's first
# start). For a cluster use cluster.sql instead.
#
#   CH_HOST=127.0.0.1 CH_PORT=9000 CH_USER=admin CH_PASSWORD=... \
#   WR_DATABASE=wechat_relay MIGRATIONS_DIR=storage/archive/migrations \
#       deployments/clickhouse/apply-migrations.sh
#
# Needs bash, clickhouse-client and sha256sum. Safe to run again: applied
# versions are skipped; a version cut short is run again from the top (its
# CREATEs say IF NOT EXISTS; ADD COLUMN gets IF NOT EXISTS where the server
# understands it, i.e. not on 18.16).
set -euo pipefail

db=${WR_DATABASE:-wechat_relay}
dir=${MIGRATIONS_DIR:-$(dirname "$0")/../../storage/archive/migrations}
if [[ ! $db =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    echo "apply-migrations: database name '$db': letters, digits and underscores only" >&2
    exit 2
fi

args=(--host "${CH_HOST:-127.0.0.1}" --port "${CH_PORT:-9000}" --user "${CH_USER:-default}")
if [[ -n ${CH_PASSWORD:-} ]]; then
    args+=(--password "$CH_PASSWORD")
fi
ch() { clickhouse-client "${args[@]}" "$@"; }

ch -q "CREATE DATABASE IF NOT EXISTS \`$db\`"
# The same table as migrate.go's createMigrationsTable.
ch --database "$db" -q "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime
) ENGINE = ReplacingMergeTree()
ORDER BY version"

applied=$(ch --database "$db" -q "SELECT version FROM schema_migrations GROUP BY version")
major=$(ch -q "SELECT toUInt32(splitByChar('.', version())[1])")

shopt -s nullglob
files=("$dir"/[0-9]*_*.sql)
if ((${#files[@]} == 0)); then
    echo "apply-migrations: no NNNN_*.sql files in $dir" >&2
    exit 1
fi
for f in $(printf '%s\n' "${files[@]}" | sort); do
    name=$(basename "$f")
    version=$((10#${name%%_*}))
    if grep -qx "$version" <<<"$applied"; then
        echo "apply-migrations: $name already applied"
        continue
    fi
    sql=$(cat "$f")
    if ((major >= 20)); then
        sql=$(sed -E 's/(ADD[[:space:]]+COLUMN)[[:space:]]+([A-Za-z_])/\1 IF NOT EXISTS \2/I' <<<"$sql")
    fi
    ch --database "$db" --multiquery <<<"$sql"
    sum=$(sha256sum "$f" | cut -d' ' -f1)
    ch --database "$db" -q "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($version, '$name', '$sum', now())"
    echo "apply-migrations: $name applied"
done
