-- 0004: compliance — the audit log, lexicon hits and their reviews, legal
-- holds (relay/audit.go, relay/lexicon.go, relay/retention.go).
--
-- Append-only like the rest: the relay inserts and selects, never updates
-- or deletes. Plain MergeTree, not Replacing: a record written twice (a
-- retried insert) stays as two identical copies, which the readers collapse
-- (LIMIT 1 BY) and verify accepts; two different records in one place stay
-- visible to verify instead of being merged away. Times are DateTime plus
-- epoch milliseconds; day = toDate(at) in UTC.

-- One row per audit record, chained per writer (prev = hash of record
-- number-1 of the same writer).
CREATE TABLE IF NOT EXISTS audit (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (writer, number);

-- One row per lexicon hit: a rule matched an archived message. id is
-- derived from the message id and the rule, so every relay instance that
-- sees the message writes the same row.
CREATE TABLE IF NOT EXISTS lexicon_hits (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (account, at_ms, id);

-- Review decisions on hits: reviewed or escalated, with a comment, by whom.
-- A hit may be reviewed more than once; the latest decision is its state.
CREATE TABLE IF NOT EXISTS alert_reviews (
    id         String,
    hit_id     String,
    decision   String,
    comment    String,
    reviewer   String,
    at         DateTime,
    at_ms      UInt64,
    day        Date
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (hit_id, at_ms, id);

-- Legal holds: a client or a conversation whose messages never expire.
CREATE TABLE IF NOT EXISTS holds (
    id         String,
    account    String,
    client     String,
    conv       String,
    reason     String,
    placed_by  String,
    at         DateTime,
    at_ms      UInt64,
    day        Date
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (account, id);
