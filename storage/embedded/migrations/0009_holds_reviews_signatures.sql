-- 0009: signed, chained legal holds and alert reviews, as in the
-- ClickHouse archive's 0009 (relay/record_seal.go, relay/hold_sign.go,
-- relay/review_sign.go).
--
-- A hold is now a chain of versions per hold id (version 1 places it, a
-- later version with released = 1 releases it), so its primary key can
-- no longer be the id alone: the table is rebuilt with the whole record
-- as its key, as the directory's (0005), so that an identical copy is
-- ignored and two different versions, or two different records of one
-- version, all stay. Rows of 0004 are copied with version 0 and no
-- signature (legacy). DROP TABLE fires no DELETE trigger; the triggers
-- are made again on the new table. Reviews already have one id per
-- decision: they only gain the columns.
--
-- Runs in one transaction with its record in schema_migrations.
CREATE TABLE holds_0009 (
    id         TEXT    NOT NULL,
    account    TEXT    NOT NULL,
    client     TEXT    NOT NULL,
    conv       TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    placed_by  TEXT    NOT NULL,
    at_ms      INTEGER NOT NULL,
    version    INTEGER NOT NULL DEFAULT 0,
    released   INTEGER NOT NULL DEFAULT 0,
    prev_hash  TEXT    NOT NULL DEFAULT '',
    hash       TEXT    NOT NULL DEFAULT '',
    key_id     TEXT    NOT NULL DEFAULT '',
    signature  TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (id, version, at_ms, account, client, conv, reason, placed_by, released, prev_hash, hash, key_id, signature)
) STRICT;
INSERT INTO holds_0009 (id, account, client, conv, reason, placed_by, at_ms)
    SELECT id, account, client, conv, reason, placed_by, at_ms FROM holds;
DROP TABLE holds;
ALTER TABLE holds_0009 RENAME TO holds;
CREATE TRIGGER holds_no_update BEFORE UPDATE ON holds
BEGIN SELECT RAISE(ABORT, 'archive is append-only: holds cannot be updated'); END;
CREATE TRIGGER holds_no_delete BEFORE DELETE ON holds
BEGIN SELECT RAISE(ABORT, 'archive is append-only: holds cannot be deleted'); END;

ALTER TABLE alert_reviews ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alert_reviews ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE alert_reviews ADD COLUMN hash TEXT NOT NULL DEFAULT '';
ALTER TABLE alert_reviews ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE alert_reviews ADD COLUMN signature TEXT NOT NULL DEFAULT '';
