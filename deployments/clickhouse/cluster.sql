-- wechat-relay archive on a ClickHouse cluster: ReplicatedMergeTree local
-- tables in wechat_relay_local, Distributed tables of the same names in
-- wechat_relay. Point the relay at the Distributed ones:
--
--   storage.clickhouse.database: wechat_relay
--
-- GENERATED from storage/archive/migrations by deployments/clusterddl_test.go:
--   go test ./deployments -run TestClusterSQL -update
-- Do not edit by hand; the tests fail when it is out of date.
--
-- Run on ClickHouse 24.x/25.x with Keeper (or ZooKeeper) and, on every
-- node, the macros {cluster} (the cluster's name in remote_servers),
-- {shard} and {replica} (see config.d/wechat-relay-cluster.xml), as an
-- administrator or the wechat_relay_migrate user (grants.sql), against
-- any one node:
--
--   clickhouse-client --multiquery < cluster.sql
--
-- Every statement is idempotent (IF NOT EXISTS), so the whole file is also
-- how a cluster is upgraded: run it again before rolling out a release
-- that brings a new migration.
--
-- HOW THIS RELATES TO THE BINARY'S OWN MIGRATIONS
--
-- The relay creates and migrates its schema itself at start (the files in
-- storage/archive/migrations, embedded in the binary, recorded in
-- schema_migrations). Those statements make plain ReplacingMergeTree
-- tables on whichever node the relay talks to: right for one server, wrong
-- for a cluster (no replication, nothing distributed). So on a cluster the
-- operator applies this file, which is each migration translated (same
-- columns, types, defaults, keys and ReplacingMergeTree versions), and
-- which ends by recording every migration as applied, with the SHA-256 of
-- the embedded file. The relay then finds every version applied and every
-- table present, and at start only runs its idempotent
-- CREATE DATABASE IF NOT EXISTS and CREATE TABLE IF NOT EXISTS
-- schema_migrations, which change nothing. Apply this file BEFORE starting
-- a relay on the cluster: a relay that finds a migration unrecorded applies
-- it itself, locally, on one node.
--
-- WHY THESE ENGINES, KEYS AND SETTINGS
--
-- - Sharding keys are functions of the row, never rand(): a replayed batch
--   must reach the shard of its first copy so that merges collapse it (the
--   relay's reads collapse copies of an id themselves meanwhile). Messages
--   and events of one conversation share a shard. Most deployments need
--   one shard and two or three replicas; the keys matter from the second
--   shard on.
-- - The relay's user must insert synchronously (insert_distributed_sync = 1,
--   distributed_foreground_insert in current releases): an asynchronous
--   Distributed insert is acknowledged before any shard has the rows, which
--   breaks "archived before delivered". Its queries use
--   id NOT IN (SELECT ... FROM events ...) over Distributed tables, which
--   the default distributed_product_mode = 'deny' refuses as soon as the
--   cluster has a second shard: 'global' it is. Both settings are in the
--   wechat_relay settings profile (grants.sql, users.xml).
-- - remote_servers must say <internal_replication>true</internal_replication>
--   for this cluster, or the Distributed tables would write every replica
--   themselves on top of ReplicatedMergeTree's own replication.
-- - Retention is by dropping monthly partitions (day), as on one server;
--   the schema also runs on ClickHouse 18.16, so no TTL.

CREATE DATABASE IF NOT EXISTS wechat_relay_local ON CLUSTER '{cluster}';
CREATE DATABASE IF NOT EXISTS wechat_relay ON CLUSTER '{cluster}';

-- The migration record (storage/archive/migrate.go creates it; not a file).

CREATE TABLE IF NOT EXISTS wechat_relay_local.schema_migrations ON CLUSTER '{cluster}' (
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/schema_migrations', '{replica}')
ORDER BY version;

CREATE TABLE IF NOT EXISTS wechat_relay.schema_migrations ON CLUSTER '{cluster}'
    AS wechat_relay_local.schema_migrations
    ENGINE = Distributed('{cluster}', wechat_relay_local, schema_migrations, version);

-- 0001_init.sql -----------------------------------------------------------

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
    day         Date
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/messages', '{replica}', accepted_ms)
PARTITION BY toYYYYMM(day)
ORDER BY (account, conv, id);

CREATE TABLE IF NOT EXISTS wechat_relay.messages ON CLUSTER '{cluster}'
    AS wechat_relay_local.messages
    ENGINE = Distributed('{cluster}', wechat_relay_local, messages, cityHash64(conv));

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

CREATE TABLE IF NOT EXISTS wechat_relay.events ON CLUSTER '{cluster}'
    AS wechat_relay_local.events
    ENGINE = Distributed('{cluster}', wechat_relay_local, events, cityHash64(conv));

CREATE TABLE IF NOT EXISTS wechat_relay_local.media ON CLUSTER '{cluster}' (
    sha256       String,
    content_type String,
    size         UInt64,
    data         String,
    fetched_at   DateTime,
    day          Date
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/media', '{replica}')
ORDER BY sha256;

CREATE TABLE IF NOT EXISTS wechat_relay.media ON CLUSTER '{cluster}'
    AS wechat_relay_local.media
    ENGINE = Distributed('{cluster}', wechat_relay_local, media, cityHash64(sha256));

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

CREATE TABLE IF NOT EXISTS wechat_relay.media_links ON CLUSTER '{cluster}'
    AS wechat_relay_local.media_links
    ENGINE = Distributed('{cluster}', wechat_relay_local, media_links, cityHash64(message_id));

-- 0002_interaction.sql ----------------------------------------------------

ALTER TABLE wechat_relay_local.messages ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS interaction UInt8 DEFAULT toUInt8(
    direction = 'in' AND (kind != 'event' OR event IN (
        'subscribe', 'SCAN', 'CLICK',
        'scancode_push', 'scancode_waitmsg')));
ALTER TABLE wechat_relay.messages ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS interaction UInt8 DEFAULT toUInt8(
    direction = 'in' AND (kind != 'event' OR event IN (
        'subscribe', 'SCAN', 'CLICK',
        'scancode_push', 'scancode_waitmsg')));

-- 0003_seals.sql ----------------------------------------------------------

ALTER TABLE wechat_relay_local.messages ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS hash String DEFAULT '';
ALTER TABLE wechat_relay.messages ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS hash String DEFAULT '';

ALTER TABLE wechat_relay_local.messages ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS batch_id String DEFAULT '';
ALTER TABLE wechat_relay.messages ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS batch_id String DEFAULT '';

ALTER TABLE wechat_relay_local.events ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS hash String DEFAULT '';
ALTER TABLE wechat_relay.events ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS hash String DEFAULT '';

ALTER TABLE wechat_relay_local.events ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS batch_id String DEFAULT '';
ALTER TABLE wechat_relay.events ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS batch_id String DEFAULT '';

CREATE TABLE IF NOT EXISTS wechat_relay_local.seals ON CLUSTER '{cluster}' (
    id          String,
    writer      String,
    stream      String,
    number      UInt64,
    prev        String,
    root        String,
    leaf_count  UInt64,
    first_ms    UInt64,
    last_ms     UInt64,
    at          DateTime,
    at_ms       UInt64,
    recovered   UInt8,
    leaf_ids    Array(String),
    leaf_convs  Array(String),
    leaf_hashes Array(String),
    hash        String,
    day         Date
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/seals', '{replica}', at_ms)
PARTITION BY toYYYYMM(day)
ORDER BY (writer, stream, number);

CREATE TABLE IF NOT EXISTS wechat_relay.seals ON CLUSTER '{cluster}'
    AS wechat_relay_local.seals
    ENGINE = Distributed('{cluster}', wechat_relay_local, seals, cityHash64(writer, stream));

-- 0004_compliance.sql -----------------------------------------------------

CREATE TABLE IF NOT EXISTS wechat_relay_local.audit ON CLUSTER '{cluster}' (
    id         String,
    writer     String,
    number     UInt64,
    prev       String,
    at         DateTime,
    at_ms      UInt64,
    employee   String,
    role       String,
    action     String,
    conv       String,
    target     String,
    detail     String,
    remote     String,
    user_agent String,
    hash       String,
    day        Date
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/audit', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (writer, number);

CREATE TABLE IF NOT EXISTS wechat_relay.audit ON CLUSTER '{cluster}'
    AS wechat_relay_local.audit
    ENGINE = Distributed('{cluster}', wechat_relay_local, audit, cityHash64(writer));

CREATE TABLE IF NOT EXISTS wechat_relay_local.lexicon_hits ON CLUSTER '{cluster}' (
    id         String,
    account    String,
    conv       String,
    message_id String,
    direction  String,
    employee   String,
    rule       String,
    matched    String,
    excerpt    String,
    at         DateTime,
    at_ms      UInt64,
    day        Date
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/lexicon_hits', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (account, at_ms, id);

CREATE TABLE IF NOT EXISTS wechat_relay.lexicon_hits ON CLUSTER '{cluster}'
    AS wechat_relay_local.lexicon_hits
    ENGINE = Distributed('{cluster}', wechat_relay_local, lexicon_hits, cityHash64(conv));

CREATE TABLE IF NOT EXISTS wechat_relay_local.alert_reviews ON CLUSTER '{cluster}' (
    id         String,
    hit_id     String,
    decision   String,
    comment    String,
    reviewer   String,
    at         DateTime,
    at_ms      UInt64,
    day        Date
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/alert_reviews', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (hit_id, at_ms, id);

CREATE TABLE IF NOT EXISTS wechat_relay.alert_reviews ON CLUSTER '{cluster}'
    AS wechat_relay_local.alert_reviews
    ENGINE = Distributed('{cluster}', wechat_relay_local, alert_reviews, cityHash64(hit_id));

CREATE TABLE IF NOT EXISTS wechat_relay_local.holds ON CLUSTER '{cluster}' (
    id         String,
    account    String,
    client     String,
    conv       String,
    reason     String,
    placed_by  String,
    at         DateTime,
    at_ms      UInt64,
    day        Date
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/holds', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (account, id);

CREATE TABLE IF NOT EXISTS wechat_relay.holds ON CLUSTER '{cluster}'
    AS wechat_relay_local.holds
    ENGINE = Distributed('{cluster}', wechat_relay_local, holds, cityHash64(account));

-- 0005_directory.sql ------------------------------------------------------

CREATE TABLE IF NOT EXISTS wechat_relay_local.directory ON CLUSTER '{cluster}' (
    kind    String,
    id      String,
    version UInt64,
    at_ms   UInt64,
    by      String,
    deleted UInt8,
    data    String
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/directory', '{replica}')
ORDER BY (kind, id, version);

CREATE TABLE IF NOT EXISTS wechat_relay.directory ON CLUSTER '{cluster}'
    AS wechat_relay_local.directory
    ENGINE = Distributed('{cluster}', wechat_relay_local, directory, cityHash64(kind, id));

-- 0006_seal_signatures.sql ------------------------------------------------

ALTER TABLE wechat_relay_local.seals ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS key_id String DEFAULT '';
ALTER TABLE wechat_relay.seals ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS key_id String DEFAULT '';

ALTER TABLE wechat_relay_local.seals ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS signature String DEFAULT '';
ALTER TABLE wechat_relay.seals ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS signature String DEFAULT '';

-- 0007_audit_signatures.sql -----------------------------------------------

ALTER TABLE wechat_relay_local.audit ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS key_id String DEFAULT '';
ALTER TABLE wechat_relay.audit ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS key_id String DEFAULT '';

ALTER TABLE wechat_relay_local.audit ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS signature String DEFAULT '';
ALTER TABLE wechat_relay.audit ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS signature String DEFAULT '';

-- 0008_directory_signatures.sql -------------------------------------------

ALTER TABLE wechat_relay_local.directory ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS prev_hash String DEFAULT '';
ALTER TABLE wechat_relay.directory ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS prev_hash String DEFAULT '';

ALTER TABLE wechat_relay_local.directory ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS hash String DEFAULT '';
ALTER TABLE wechat_relay.directory ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS hash String DEFAULT '';

ALTER TABLE wechat_relay_local.directory ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS key_id String DEFAULT '';
ALTER TABLE wechat_relay.directory ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS key_id String DEFAULT '';

ALTER TABLE wechat_relay_local.directory ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS signature String DEFAULT '';
ALTER TABLE wechat_relay.directory ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS signature String DEFAULT '';

-- 0009_holds_reviews_signatures.sql ---------------------------------------

ALTER TABLE wechat_relay_local.holds ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;
ALTER TABLE wechat_relay.holds ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;

ALTER TABLE wechat_relay_local.holds ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS released UInt8 DEFAULT 0;
ALTER TABLE wechat_relay.holds ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS released UInt8 DEFAULT 0;

ALTER TABLE wechat_relay_local.holds ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS prev_hash String DEFAULT '';
ALTER TABLE wechat_relay.holds ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS prev_hash String DEFAULT '';

ALTER TABLE wechat_relay_local.holds ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS hash String DEFAULT '';
ALTER TABLE wechat_relay.holds ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS hash String DEFAULT '';

ALTER TABLE wechat_relay_local.holds ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS key_id String DEFAULT '';
ALTER TABLE wechat_relay.holds ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS key_id String DEFAULT '';

ALTER TABLE wechat_relay_local.holds ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS signature String DEFAULT '';
ALTER TABLE wechat_relay.holds ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS signature String DEFAULT '';

ALTER TABLE wechat_relay_local.alert_reviews ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;
ALTER TABLE wechat_relay.alert_reviews ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;

ALTER TABLE wechat_relay_local.alert_reviews ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS prev_hash String DEFAULT '';
ALTER TABLE wechat_relay.alert_reviews ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS prev_hash String DEFAULT '';

ALTER TABLE wechat_relay_local.alert_reviews ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS hash String DEFAULT '';
ALTER TABLE wechat_relay.alert_reviews ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS hash String DEFAULT '';

ALTER TABLE wechat_relay_local.alert_reviews ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS key_id String DEFAULT '';
ALTER TABLE wechat_relay.alert_reviews ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS key_id String DEFAULT '';

ALTER TABLE wechat_relay_local.alert_reviews ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS signature String DEFAULT '';
ALTER TABLE wechat_relay.alert_reviews ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS signature String DEFAULT '';

-- 0010_client_profiles.sql ------------------------------------------------

CREATE TABLE IF NOT EXISTS wechat_relay_local.client_profiles ON CLUSTER '{cluster}' (
    account   String,
    openid    String,
    conv      String,
    version   UInt64,
    at_ms     UInt64,
    by        String,
    name      String,
    remark    String,
    tags      Array(String),
    note      String,
    prev_hash String,
    hash      String,
    key_id    String,
    signature String
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/client_profiles', '{replica}')
ORDER BY (account, openid, version);

CREATE TABLE IF NOT EXISTS wechat_relay.client_profiles ON CLUSTER '{cluster}'
    AS wechat_relay_local.client_profiles
    ENGINE = Distributed('{cluster}', wechat_relay_local, client_profiles, cityHash64(conv));

CREATE TABLE IF NOT EXISTS wechat_relay_local.client_tags ON CLUSTER '{cluster}' (
    account   String,
    version   UInt64,
    at_ms     UInt64,
    by        String,
    tags      Array(String),
    prev_hash String,
    hash      String,
    key_id    String,
    signature String
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/client_tags', '{replica}')
ORDER BY (account, version);

CREATE TABLE IF NOT EXISTS wechat_relay.client_tags ON CLUSTER '{cluster}'
    AS wechat_relay_local.client_tags
    ENGINE = Distributed('{cluster}', wechat_relay_local, client_tags, cityHash64(account));

-- 0011_journal.sql --------------------------------------------------------

CREATE TABLE IF NOT EXISTS wechat_relay_local.journal ON CLUSTER '{cluster}' (
    key        String,
    kind       String,
    conv       String,
    message_id String,
    hash       String,
    answer     String,
    at         DateTime,
    at_ms      UInt64,
    day        Date
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/wechat_relay_local/journal', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (kind, key);

CREATE TABLE IF NOT EXISTS wechat_relay.journal ON CLUSTER '{cluster}'
    AS wechat_relay_local.journal
    ENGINE = Distributed('{cluster}', wechat_relay_local, journal, cityHash64(key));

-- Record the migrations as applied (checksum: SHA-256 of the file). A version
-- recorded twice is harmless: ReplacingMergeTree keyed by version.

SET insert_distributed_sync = 1;

INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES (1, '0001_init.sql', 'f3790aa511a1b4f4e4d0e5b39b3092b8ae9562656bf8f50040f1ad41da8db1c2', now());
INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES (2, '0002_interaction.sql', 'c565c125d628bc1e273938cf8bd5defbcda63d2735a69c257c7b5071764a2685', now());
INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES (3, '0003_seals.sql', '06580f8a3e832a094a9a5181342b4b6b2a7a462cddf07d19707ad15e1bd5a926', now());
INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES (4, '0004_compliance.sql', 'cdf1e84bb31be03e40577196665f16f28652cf5ead889610dc65816f397f41c5', now());
INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES (5, '0005_directory.sql', '129c2e7a4253b5136fb309b28ec6a97c815716f369ab7f4e0207722606e25c69', now());
INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES (6, '0006_seal_signatures.sql', 'f24f89566e7d7e17c51fefa72b81666f8e25b06e7733d4bc121cc2919f796481', now());
INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES (7, '0007_audit_signatures.sql', 'd1f26e9a08f5c84b19f53cb2231c44642c3096dff8cb3115384049e165949d62', now());
INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES (8, '0008_directory_signatures.sql', 'affbd7b1a50258921eb3f5088fadc45b045b82a27f314e93a46b67b3381b1dfb', now());
INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES (9, '0009_holds_reviews_signatures.sql', 'a6fc0037cebfbd1c4207ea0e9eae52f8b71baf2d81c1a39bd3fc7086afd20e0e', now());
INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES (10, '0010_client_profiles.sql', '16379358328ba8953a7a0571dd766aebcc7c5958599d85b26f4fe232d7471490', now());
INSERT INTO wechat_relay.schema_migrations (version, name, checksum, applied_at) VALUES (11, '0011_journal.sql', 'f0495de11d9bf14ff77ee6ba22ed0638090775dfe7c8dbf0df04b19d55b0e961', now());
