-- 0005: the directory — every version of every employee, team and account
-- entry that admins changed at run time (relay/directory.go,
-- relay.DirectoryStore), as in the ClickHouse archive's 0005.
--
-- Append-only: a change is a new row (a new version of its entry), and
-- triggers refuse every UPDATE and DELETE, so the archive keeps who held
-- which role and which rights at any time. The primary key is the whole
-- record: storing an identical record again is ignored (ON CONFLICT DO
-- NOTHING), while two different records of one version (two processes
-- changing an entry at once) both stay, and the relay picks the same one
-- everywhere. Times are epoch milliseconds.
--
-- Runs in one transaction with its record in schema_migrations.
CREATE TABLE directory (
    kind    TEXT    NOT NULL,
    id      TEXT    NOT NULL,
    version INTEGER NOT NULL,
    at_ms   INTEGER NOT NULL,
    "by"    TEXT    NOT NULL,
    deleted INTEGER NOT NULL,
    data    TEXT    NOT NULL,
    PRIMARY KEY (kind, id, version, at_ms, "by", deleted, data)
) STRICT;

CREATE TRIGGER directory_no_update BEFORE UPDATE ON directory
BEGIN SELECT RAISE(ABORT, 'archive is append-only: directory records cannot be updated'); END;
CREATE TRIGGER directory_no_delete BEFORE DELETE ON directory
BEGIN SELECT RAISE(ABORT, 'archive is append-only: directory records cannot be deleted'); END;
