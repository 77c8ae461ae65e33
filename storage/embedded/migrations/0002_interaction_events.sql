-- 0002: whether an inbound message opened WeChat's 48-hour window, and the
-- indexes the delivery-event and interaction queries need.
--
-- interaction is 1 for an inbound message or event that counts as the
-- client interacting with the account (relay.Message.IsInteraction), 0
-- otherwise, set by the writer for every row from IsInteraction, so the
-- rule lives in Go.
--
-- Rows archived before this migration have NULL there: SQLite cannot give
-- an added column a default computed from other columns, and the archive
-- is append-only (the triggers of 0001 refuse UPDATE), so nothing is
-- backfilled. Instead legacy_interaction, a virtual column (computed when
-- read, stored nowhere), derives it from direction, kind and event with the
-- rule IsInteraction had when this file was written — the same expression
-- as the ClickHouse archive's default for the column — and readers use
-- COALESCE(interaction, legacy_interaction).
--
-- Like every migration here, this runs in one transaction with its record
-- in schema_migrations: applied whole or not at all, never twice.
ALTER TABLE messages ADD COLUMN interaction INTEGER;

ALTER TABLE messages ADD COLUMN legacy_interaction INTEGER
    GENERATED ALWAYS AS (
        direction = 'in' AND (kind != 'event' OR event IN (
            'subscribe', 'SCAN', 'CLICK',
            'scancode_push', 'scancode_waitmsg'))
    ) VIRTUAL;

-- LastInteraction: a conversation's messages by acceptance.
CREATE INDEX messages_conv_accepted ON messages (conv, accepted_ms);

-- Unsettled: only outbound messages, by acceptance.
CREATE INDEX messages_out_accepted ON messages (accepted_ms) WHERE direction = 'out';

-- (The latest event of a message is found through events_message, from
-- 0001: a message has a handful of events.)
