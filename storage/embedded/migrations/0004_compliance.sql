-- 0004: compliance — the audit log, lexicon hits and their reviews, legal
-- holds, as in the ClickHouse archive's 0004. Append-only: triggers refuse
-- every UPDATE and DELETE. Times are epoch milliseconds.
--
-- Runs in one transaction with its record in schema_migrations.
CREATE TABLE audit (
    id         TEXT    NOT NULL PRIMARY KEY,
    writer     TEXT    NOT NULL,
    number     INTEGER NOT NULL,
    prev       TEXT    NOT NULL,
    at_ms      INTEGER NOT NULL,
    employee   TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    conv       TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    remote     TEXT    NOT NULL,
    user_agent TEXT    NOT NULL,
    hash       TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_chain ON audit (writer, number);
CREATE INDEX audit_at ON audit (at_ms);

CREATE TABLE lexicon_hits (
    id         TEXT    NOT NULL PRIMARY KEY,
    account    TEXT    NOT NULL,
    conv       TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    direction  TEXT    NOT NULL,
    employee   TEXT    NOT NULL,
    rule       TEXT    NOT NULL,
    matched    TEXT    NOT NULL,
    excerpt    TEXT    NOT NULL,
    at_ms      INTEGER NOT NULL
) STRICT;
CREATE INDEX lexicon_hits_at ON lexicon_hits (at_ms);

CREATE TABLE alert_reviews (
    id         TEXT    NOT NULL PRIMARY KEY,
    hit_id     TEXT    NOT NULL,
    decision   TEXT    NOT NULL,
    comment    TEXT    NOT NULL,
    reviewer   TEXT    NOT NULL,
    at_ms      INTEGER NOT NULL
) STRICT;
CREATE INDEX alert_reviews_hit ON alert_reviews (hit_id, at_ms);

CREATE TABLE holds (
    id         TEXT    NOT NULL PRIMARY KEY,
    account    TEXT    NOT NULL,
    client     TEXT    NOT NULL,
    conv       TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    placed_by  TEXT    NOT NULL,
    at_ms      INTEGER NOT NULL
) STRICT;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'archive is append-only: audit records cannot be updated'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'archive is append-only: audit records cannot be deleted'); END;
CREATE TRIGGER lexicon_hits_no_update BEFORE UPDATE ON lexicon_hits
BEGIN SELECT RAISE(ABORT, 'archive is append-only: lexicon hits cannot be updated'); END;
CREATE TRIGGER lexicon_hits_no_delete BEFORE DELETE ON lexicon_hits
BEGIN SELECT RAISE(ABORT, 'archive is append-only: lexicon hits cannot be deleted'); END;
CREATE TRIGGER alert_reviews_no_update BEFORE UPDATE ON alert_reviews
BEGIN SELECT RAISE(ABORT, 'archive is append-only: reviews cannot be updated'); END;
CREATE TRIGGER alert_reviews_no_delete BEFORE DELETE ON alert_reviews
BEGIN SELECT RAISE(ABORT, 'archive is append-only: reviews cannot be deleted'); END;
CREATE TRIGGER holds_no_update BEFORE UPDATE ON holds
BEGIN SELECT RAISE(ABORT, 'archive is append-only: holds cannot be updated'); END;
CREATE TRIGGER holds_no_delete BEFORE DELETE ON holds
BEGIN SELECT RAISE(ABORT, 'archive is append-only: holds cannot be deleted'); END;
