-- Least-privilege access to the wechat-relay archive, with SQL-driven
-- access control (ClickHouse 24.x/25.x; run as a user with
-- access_management). For servers configured through users.xml only, see
-- users.xml beside this file.
--
-- Placeholders, replaced before running (never commit real values):
--   __WECHAT_RELAY_PASSWORD_SHA256__    hex SHA-256 of the relay's password
--   __WECHAT_RELAY_MIGRATE_PASSWORD_SHA256__  same, for the migration user
-- e.g.  printf %s "$PASSWORD" | sha256sum | cut -d' ' -f1
-- Only hashes appear here, so the passwords never reach query_log.
--
-- On a single server, delete every ON CLUSTER '{cluster}' (the compose
-- stack does that: compose/clickhouse-init/10-wechat-relay.sh).
--
-- WHAT THE RELAY MAY DO
--
-- The archive is append-only: the relay inserts and reads, and nobody it
-- runs as may alter, delete, drop, truncate or optimize (OPTIMIZE ...
-- DEDUPLICATE would rewrite rows). So wechat_relay_writer has SELECT and
-- INSERT only.
--
-- The relay runs with `storage.clickhouse.migrate: false` (compose and
-- Kubernetes configurations here do): it then runs no DDL at all at start,
-- only checks that schema_migrations lists every migration it knows, and
-- refuses to start, saying so, when one is missing. SELECT and INSERT are
-- all it needs.
--
-- wechat_relay_startup (CREATE DATABASE and CREATE TABLE on the archive
-- database) is kept for a relay left at the default `migrate: true`, which
-- runs `CREATE DATABASE IF NOT EXISTS` and `CREATE TABLE IF NOT EXISTS
-- schema_migrations` at every start (ClickHouse checks the CREATE privilege
-- before IF NOT EXISTS). It is not granted to the relay's user below; grant
-- it only if you cannot set migrate: false. CREATE TABLE can add a table; it
-- cannot alter, drop, truncate, rename or optimize one, nor remove a row.
--
-- Schema changes (cluster.sql, or a new migration) are done by a person or
-- a job holding wechat_relay_migrator, never by the running relay.

-- Settings every session of the relay needs (see cluster.sql):
--   insert_distributed_sync (distributed_foreground_insert in current
--     releases): a Distributed insert is acknowledged only once the shards
--     have the rows.
--   insert_quorum: and only once that many replicas of the shard have them.
--     2 suits a shard of 2 or 3 replicas; while fewer are up, inserts fail
--     and the relay keeps messages in its spool until they return. Ignored
--     by non-replicated tables (a single server).
--   distributed_product_mode = 'global': the relay's IN (SELECT ...)
--     subqueries over Distributed tables, refused by the default ('deny')
--     once the cluster has a second shard.
CREATE SETTINGS PROFILE IF NOT EXISTS wechat_relay_profile ON CLUSTER '{cluster}'
    SETTINGS insert_distributed_sync = 1, insert_quorum = 2, insert_quorum_timeout = 10000,
             distributed_product_mode = 'global';

CREATE ROLE IF NOT EXISTS wechat_relay_writer ON CLUSTER '{cluster}';
CREATE ROLE IF NOT EXISTS wechat_relay_startup ON CLUSTER '{cluster}';
CREATE ROLE IF NOT EXISTS wechat_relay_migrator ON CLUSTER '{cluster}';

-- The relay: read and append. wechat_relay_local is included because a
-- cluster whose remote_servers has a <secret> runs the shard-side part of a
-- Distributed query as the initial user.
GRANT ON CLUSTER '{cluster}' SELECT, INSERT ON wechat_relay.* TO wechat_relay_writer;
GRANT ON CLUSTER '{cluster}' SELECT, INSERT ON wechat_relay_local.* TO wechat_relay_writer;

-- A relay at migrate: true: its idempotent startup DDL (see above). Not
-- granted to wechat_relay by default.
GRANT ON CLUSTER '{cluster}' CREATE DATABASE, CREATE TABLE ON wechat_relay.* TO wechat_relay_startup;

-- Migrations: create tables and add columns (all migrations ever do), and
-- run them ON CLUSTER. No ALTER UPDATE/DELETE, DROP, TRUNCATE or OPTIMIZE:
-- widen this deliberately, for one change, if a migration ever needs it.
GRANT ON CLUSTER '{cluster}' SELECT, INSERT, CREATE DATABASE, CREATE TABLE, ALTER ADD COLUMN
    ON wechat_relay.* TO wechat_relay_migrator;
GRANT ON CLUSTER '{cluster}' SELECT, INSERT, CREATE DATABASE, CREATE TABLE, ALTER ADD COLUMN
    ON wechat_relay_local.* TO wechat_relay_migrator;
GRANT ON CLUSTER '{cluster}' CLUSTER ON *.* TO wechat_relay_migrator;

-- The relay's user. Restrict HOST to the relays' addresses where you can
-- (e.g. HOST IP '10.20.0.0/16').
CREATE USER IF NOT EXISTS wechat_relay ON CLUSTER '{cluster}'
    IDENTIFIED WITH sha256_hash BY '__WECHAT_RELAY_PASSWORD_SHA256__'
    HOST ANY
    SETTINGS PROFILE 'wechat_relay_profile';
GRANT ON CLUSTER '{cluster}' wechat_relay_writer TO wechat_relay;
ALTER USER wechat_relay ON CLUSTER '{cluster}' DEFAULT ROLE wechat_relay_writer;

-- The migration user, for cluster.sql and later migrations. Lock it away
-- (or DROP USER it) between migrations.
CREATE USER IF NOT EXISTS wechat_relay_migrate ON CLUSTER '{cluster}'
    IDENTIFIED WITH sha256_hash BY '__WECHAT_RELAY_MIGRATE_PASSWORD_SHA256__'
    HOST ANY
    SETTINGS PROFILE 'wechat_relay_profile';
GRANT ON CLUSTER '{cluster}' wechat_relay_migrator TO wechat_relay_migrate;
ALTER USER wechat_relay_migrate ON CLUSTER '{cluster}' DEFAULT ROLE wechat_relay_migrator;

-- Check:  SHOW GRANTS FOR wechat_relay;
-- Expect: GRANT SELECT, INSERT ON wechat_relay.* ... and nothing with
--         ALTER, DROP, TRUNCATE or OPTIMIZE.
