-- 0010: the journal ledger (relay.JournalStore, relay/journal), as in the
-- ClickHouse archive's 0010: which archived messages, and which per-day
-- conversation transcripts, the firm's own archive accepted as emails,
-- under which Message-ID, when (at_ms, epoch milliseconds), and with
-- which answer from its server.
--
-- key is the message id (kind 'message') or the transcript key
-- 'transcript:<conv>:<YYYY-MM-DD>' (kind 'transcript'). A record
-- journaled twice (at least once) keeps both entries, as ClickHouse does;
-- an identical entry stored again is ignored. Append-only: triggers
-- refuse UPDATE and DELETE.
CREATE TABLE journal (
    key        TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    conv       TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    hash       TEXT    NOT NULL,
    answer     TEXT    NOT NULL,
    at_ms      INTEGER NOT NULL,
    PRIMARY KEY (kind, key, at_ms, message_id)
) STRICT;

CREATE INDEX journal_key ON journal (key);

-- Unjournaled and its count: every message, by acceptance.
CREATE INDEX messages_accepted ON messages (accepted_ms, id);

CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'archive is append-only: journal entries cannot be updated'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'archive is append-only: journal entries cannot be deleted'); END;
