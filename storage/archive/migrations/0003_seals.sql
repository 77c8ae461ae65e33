-- 0003: tamper evidence — row hashes, batch ids and seals (relay/seal.go).
--
-- Every message and delivery event archived from now on carries hash, the
-- hex SHA-256 of its canonical encoding (relay.MessageHash, EventHash), and
-- batch_id, the id of the seal that covers it. A seal is stored once the
-- rows of its batch are: it lists every row of the batch (leaf_ids,
-- leaf_convs, leaf_hashes, sorted by id), their Merkle root, and the hash
-- of the previous seal of the same writer and stream, so the seals of a
-- writer form a chain. `wechat-relay verify` recomputes all of it.
--
-- Rows archived before this migration have empty hash and batch_id: no seal
-- covers them, and verify reports them as unsealed. Nothing is rewritten.
--
-- ADD COLUMN cannot say IF NOT EXISTS on 18.16: the migration runner
-- (migrate.go) guards each `ALTER TABLE t ADD COLUMN c`, one column per
-- statement.
ALTER TABLE messages ADD COLUMN hash String DEFAULT '';
ALTER TABLE messages ADD COLUMN batch_id String DEFAULT '';
ALTER TABLE events ADD COLUMN hash String DEFAULT '';
ALTER TABLE events ADD COLUMN batch_id String DEFAULT '';

-- One row per seal. Keyed by its place in its chain (writer, stream,
-- number): a seal stored again (a retried insert) is an identical copy that
-- merges away; two different seals in one place stay visible to verify
-- until a merge, which keeps one of them — and verify then finds that one
-- out of its chain. Times are epoch milliseconds; day = toDate(at) in UTC.
CREATE TABLE IF NOT EXISTS seals (
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
) ENGINE = ReplacingMergeTree(at_ms)
PARTITION BY toYYYYMM(day)
ORDER BY (writer, stream, number);
