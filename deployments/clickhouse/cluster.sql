-- wechat-relay archive on a ClickHouse cluster: ReplicatedMergeTree local
-- tables in wechat_relay_local, Distributed tables of the same names in
-- wechat_relay. Point the relay at the Distributed ones:
--
--   storage.clickhouse.database: wechat_relay
--
-- Run once, as an administrator or a user with the wechat_relay_migrator
-- role (grants.sql), against any node, on ClickHouse 24.x/25.x with
-- ClickHouse Keeper (or ZooKeeper) and these macros on every node:
-- {cluster} (the cluster's name in remote_servers), {shard}, {replica}
-- (see config.d/wechat-relay-cluster.xml):
--
--   clickhouse-client --multiquery < cluster.sql
--
-- HOW THIS RELATES TO THE BINARY'S OWN MIGRATIONS
--
-- The relay creates and migrates its schema itself at every start
-- (storage/archive/migrations/NNNN_*.sql, embedded in the binary, recorded
-- in schema_migrations). Those statements create plain ReplacingMergeTree
-- tables on whichever node the relay talks to: right for one server, wrong
-- for a cluster (no replication, nothing distributed). So on a cluster the
-- operator creates the tables here, column for column the same as the
-- migrations (deployments_test.go compares them with what the binary
-- creates), and records the migrations as applied, with the checksums of
-- the embedded files, at the end of this file. The relay then finds every
-- version applied and every table present: at start it runs only its
-- idempotent `CREATE DATABASE IF NOT EXISTS wechat_relay` and
-- `CREATE TABLE IF NOT EXISTS schema_migrations`, which change nothing.
--
-- When a release adds a migration (0003_...), translate it here (ON CLUSTER,
-- on the local tables, then the same on the Distributed tables), apply it
-- before rolling out the release, and record it in schema_migrations with
-- the new file's SHA-256. The tests fail until this file records every
-- embedded migration with its checksum. Migrations only ever add (tables,
-- columns with defaults); an older relay keeps working on a newer schema.
--
-- WHY THESE ENGINES, KEYS AND SETTINGS
--
-- - Same columns, types, ORDER BY and PARTITION BY as the migrations, and
--   the same ReplacingMergeTree versions: the relay's reads collapse copies
--   of an id themselves (LIMIT 1 BY, GROUP BY), merges collapse them later.
-- - Sharding keys are functions of the row, never rand(): a replay of a
--   batch must reach the same shard as the first copy so that merges can
--   collapse it. Messages and events of one conversation share a shard.
--   Most deployments need one shard and two or three replicas; the keys
--   matter only when a second shard is added.
-- - The relay's user must insert synchronously (insert_distributed_sync =
--   1, called distributed_foreground_insert in current releases): an
--   asynchronous Distributed insert is acknowledged before any shard has
--   the rows, which breaks "archived before delivered". Its queries use
--   `id NOT IN (SELECT ... FROM events ...)` on Distributed tables, which
--   the default distributed_product_mode = 'deny' refuses: set 'global'.
--   Both are in the wechat_relay settings profile (grants.sql, users.xml).
-- - remote_servers must say <internal_replication>true</internal_replication>
--   for this cluster, or the Distributed tables would write every replica
--   themselves on top of ReplicatedMergeTree's own replication.
-- - Retention is by dropping monthly partitions (day), as on one server:
--   the schema must still run on ClickHouse 18.16, so no TTL here.

CREATE DATABASE IF NOT EXISTS wechat_relay_local ON CLUSTER '{cluster}';
CREATE DATABASE IF NOT EXISTS wechat_relay ON CLUSTER '{cluster}';

-- Local, replicated tables ------------------------------------------------

-- 0001 messages + 0002 interaction (same DEFAULT expression, for rows
-- written without the column; the relay always writes it).
CREATE TABLE IF NOT EXISTS wechat_relay_local.messages ON CLUSTER '{cluster}' (
    id          String,
    account     String,
    client      String,
    conv        String,
    seq         UInt64,
    direction   String,
    kind        String,
    wx_msg_id   String,
    event       String,
    event_key   String,
    text        String,
    media_id    String,
    attrs       String,
    raw         String,
    created_at  DateTime,
    accepted_at DateTime,
    accepted_ms UInt64,
    employee    String,
    day         Date,
    interaction UInt8 DEFAULT toUInt8(
        direction = 'in' AND (kind != 'event' OR event IN (
            'subscribe', 'SCAN', 'CLICK', 'VIEW',
            'scancode_push', 'scancode_waitmsg', 'pic_sysphoto',
            'pic_photo_or_album', 'pic_weixin', 'location_select')))
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/messages', '{replica}', accepted_ms)
PARTITION BY toYYYYMM(day)
ORDER BY (account, conv, id);

CREATE TABLE IF NOT EXISTS wechat_relay_local.events ON CLUSTER '{cluster}' (
    id         String,
    message_id String,
    account    String,
    conv       String,
    type       String,
    errcode    Int32,
    errmsg     String,
    at         DateTime,
    at_ms      UInt64,
    day        Date
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/events', '{replica}', at_ms)
PARTITION BY toYYYYMM(day)
ORDER BY (account, conv, id);

CREATE TABLE IF NOT EXISTS wechat_relay_local.media ON CLUSTER '{cluster}' (
    sha256       String,
    content_type String,
    size         UInt64,
    data         String,
    fetched_at   DateTime,
    day          Date
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/media', '{replica}')
ORDER BY sha256;

CREATE TABLE IF NOT EXISTS wechat_relay_local.media_links ON CLUSTER '{cluster}' (
    message_id String,
    sha256     String,
    media_id   String,
    file_name  String,
    linked_at  DateTime,
    day        Date
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/media_links', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY message_id;

-- The migration record (created by the binary's migrate.go, not a file).
CREATE TABLE IF NOT EXISTS wechat_relay_local.schema_migrations ON CLUSTER '{cluster}' (
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/schema_migrations', '{replica}')
ORDER BY version;

-- Distributed tables, the ones the relay uses ------------------------------

CREATE TABLE IF NOT EXISTS wechat_relay.messages ON CLUSTER '{cluster}'
    AS wechat_relay_local.messages
    ENGINE = Distributed('{cluster}', wechat_relay_local, messages, cityHash64(conv));

CREATE TABLE IF NOT EXISTS wechat_relay.events ON CLUSTER '{cluster}'
    AS wechat_relay_local.events
    ENGINE = Distributed('{cluster}', wechat_relay_local, events, cityHash64(conv));

CREATE TABLE IF NOT EXISTS wechat_relay.media ON CLUSTER '{cluster}'
    AS wechat_relay_local.media
    ENGINE = Distributed('{cluster}', wechat_relay_local, media, cityHash64(sha256));

CREATE TABLE IF NOT EXISTS wechat_relay.media_links ON CLUSTER '{cluster}'
    AS wechat_relay_local.media_links
    ENGINE = Distributed('{cluster}', wechat_relay_local, media_links, cityHash64(message_id));

CREATE TABLE IF NOT EXISTS wechat_relay.schema_migrations ON CLUSTER '{cluster}'
    AS wechat_relay_local.schema_migrations
    ENGINE = Distributed('{cluster}', wechat_relay_local, schema_migrations, version);

-- Record the binary's migrations as applied ---------------------------------
-- checksum = hex SHA-256 of storage/archive/migrations/<name>. Recording a
-- version twice is harmless (ReplacingMergeTree keyed by version).

SET insert_distributed_sync = 1;

INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES
    (1, '0001_init.sql', 'f3790aa511a1b4f4e4d0e5b39b3092b8ae9562656bf8f50040f1ad41da8db1c2', now()),
    (2, '0002_interaction.sql', 'c565c125d628bc1e273938cf8bd5defbcda63d2735a69c257c7b5071764a2685', now());
