#!/usr/bin/env bash
# Creates the secrets docker-compose.yml expects, in deployments/compose/secrets/
# (git-ignored). Existing files are kept, so running it again is harmless.
#
#   deployments/compose/make-secrets.sh
#
# Generated: passwords, the console tokens, and the callback Token and
# EncodingAESKey of the account "main" (enter those two in the WeChat admin
# console, 基本配置 → 服务器配置). Not generated: the AppSecret, which WeChat
# issues; the file gets a placeholder that you must replace.
#
# The directory is mode 0700 and the files 0444: Docker bind-mounts each
# file into the containers, which run as other users (relay 65532, redis
# 999, clickhouse 101) and must be able to read it, while the directory
# keeps other host users out.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p secrets
chmod 0700 secrets

rand() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1" || true; }
put() { # put NAME VALUE: write a secret unless it exists
    local f="secrets/$1"
    if [[ -e $f ]]; then
        echo "keep    $f"
        return
    fi
    printf '%s' "$2" >"$f"
    chmod 0444 "$f"
    echo "created $f"
}

put clickhouse_relay_password "$(rand 32)"
put clickhouse_migrate_password "$(rand 32)"
put redis_password "$(rand 32)"
put wechat_main_token "$(rand 32)"
put wechat_main_aes_key "$(rand 43)"
put wechat_main_app_secret "REPLACE_WITH_THE_APPSECRET_FROM_THE_WECHAT_ADMIN_CONSOLE"
put console_token_alice "$(rand 40)"
put console_token_sue "$(rand 40)"

# Redis reads its password from an ACL file (never from its command line).
put redis_users.acl "user default on #$(printf '%s' "$(cat secrets/redis_password)" | sha256sum | cut -d' ' -f1) ~* &* +@all"

# The ClickHouse image takes its admin password from the environment only.
if [[ ! -e secrets/clickhouse_admin.env ]]; then
    printf 'CLICKHOUSE_USER=admin\nCLICKHOUSE_PASSWORD=%s\nCLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT=1\n' "$(rand 32)" >secrets/clickhouse_admin.env
    chmod 0400 secrets/clickhouse_admin.env
    echo "created secrets/clickhouse_admin.env"
fi

if grep -q REPLACE_WITH secrets/wechat_main_app_secret; then
    echo
    echo "Now put the account's AppSecret into $(pwd)/secrets/wechat_main_app_secret"
fi
