-- 0010: the journal ledger (relay.JournalStore, relay/journal): which
-- archived messages, and which per-day conversation transcripts, the
-- firm's own archive accepted as emails over SMTP, under which
-- Message-ID, when, and with which answer from its server.
--
-- key is the message id (kind 'message') or the transcript key
-- 'transcript:<conv>:<YYYY-MM-DD>' (kind 'transcript'); hash is the
-- message's archive hash or the transcript's. Plain MergeTree, as the
-- audit log: a record journaled twice (at least once: a crash between
-- the server's answer and this insert) keeps both entries, and readers
-- take the earliest (LIMIT 1 BY key). day = toDate(at) in UTC: an entry
-- is never dated before the message it journals, which keeps the
-- Unjournaled anti-join to the partitions from the messages' day on.
CREATE TABLE IF NOT EXISTS journal (
    key        String,
    kind       String,
    conv       String,
    message_id String,
    hash       String,
    answer     String,
    at         DateTime,
    at_ms      UInt64,
    day        Date
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (kind, key);
