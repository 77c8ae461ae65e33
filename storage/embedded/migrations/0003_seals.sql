-- 0003: tamper evidence — row hashes, batch ids and seals (relay/seal.go),
-- as in the ClickHouse archive's 0003.
--
-- Every message and delivery event archived from now on carries hash, the
-- hex SHA-256 of its canonical encoding (relay.MessageHash, EventHash), and
-- batch_id, the id of the seal that covers it. A seal lists every row of
-- its batch (leaves: a JSON array of [id, conv, hash], sorted by id), their
-- Merkle root, and the hash of the previous seal of the same writer and
-- stream. `wechat-relay verify` recomputes all of it. Rows archived before
-- this migration have empty hash and batch_id, and verify reports them as
-- unsealed: nothing is rewritten (the triggers of 0001 forbid it anyway).
--
-- Runs in one transaction with its record in schema_migrations.
ALTER TABLE messages ADD COLUMN hash TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN batch_id TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN hash TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN batch_id TEXT NOT NULL DEFAULT '';

-- Healing a batch and verifying read rows by batch id.
CREATE INDEX messages_batch ON messages (batch_id);
CREATE INDEX events_batch ON events (batch_id);

-- One row per seal, keyed by its id (writer/stream/number): storing a seal
-- again is ignored (ON CONFLICT (id) DO NOTHING). Times are epoch
-- milliseconds.
CREATE TABLE seals (
    id         TEXT    NOT NULL PRIMARY KEY,
    writer     TEXT    NOT NULL,
    stream     TEXT    NOT NULL,
    number     INTEGER NOT NULL,
    prev       TEXT    NOT NULL,
    root       TEXT    NOT NULL,
    leaf_count INTEGER NOT NULL,
    first_ms   INTEGER NOT NULL,
    last_ms    INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL,
    recovered  INTEGER NOT NULL,
    leaves     TEXT    NOT NULL,
    hash       TEXT    NOT NULL
) STRICT;

-- LatestSeal and verify's walk along each chain.
CREATE INDEX seals_chain ON seals (writer, stream, number);

CREATE TRIGGER seals_no_update BEFORE UPDATE ON seals
BEGIN SELECT RAISE(ABORT, 'archive is append-only: seals cannot be updated'); END;
CREATE TRIGGER seals_no_delete BEFORE DELETE ON seals
BEGIN SELECT RAISE(ABORT, 'archive is append-only: seals cannot be deleted'); END;
