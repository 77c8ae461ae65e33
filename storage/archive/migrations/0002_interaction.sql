-- 0002: whether an inbound message opened WeChat's 48-hour window.
--
-- interaction is 1 for an inbound message or event that counts as the
-- client interacting with the account (relay.Message.IsInteraction), 0
-- otherwise. The writer sets it for every row from IsInteraction, so the
-- rule lives in Go; LastInteraction reads it.
--
-- Rows archived before this migration have no value of their own. For them
-- the DEFAULT expression computes it from direction, kind and event when
-- they are read (ClickHouse evaluates a column's default for parts written
-- before the column existed), with the rule IsInteraction had when this
-- file was written: any inbound message, and the inbound events of the
-- client's own actions. Nothing is rewritten: no mutation, no UPDATE.
--
-- Idempotency: 18.16 has no ADD COLUMN IF NOT EXISTS (a syntax error there;
-- it came in later releases), and adding a column that exists fails. So the
-- migration runner (migrate.go) guards every `ALTER TABLE t ADD COLUMN c`
-- statement itself: it is skipped when system.columns already lists c in t,
-- and an error is forgiven when c is there afterwards (another instance
-- added it at the same moment). Hence one column per ALTER statement.
ALTER TABLE messages ADD COLUMN interaction UInt8 DEFAULT toUInt8(
    direction = 'in' AND (kind != 'event' OR event IN (
        'subscribe', 'SCAN', 'CLICK',
        'scancode_push', 'scancode_waitmsg')));
