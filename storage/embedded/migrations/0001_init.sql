-- 0001: the embedded archive's first tables.
--
-- The same four tables as the ClickHouse archive (storage/archive), with
-- SQLite's means: a primary key where ClickHouse collapses copies at read
-- time, INTEGER epoch seconds or milliseconds where it has DateTime, and
-- triggers that refuse UPDATE and DELETE, because the archive is
-- append-only. STRICT tables, so that a value of the wrong type is an
-- error rather than silently stored as something else.
--
-- A migration runs in one transaction together with its record in
-- schema_migrations: it is applied whole or not at all.

-- One row per archived message or event, either direction, keyed by the
-- message id: a replay of the same id is ignored (ON CONFLICT (id) DO
-- NOTHING), never a second row. attrs is the JSON object of
-- relay.Message.Attrs; raw the callback body, byte for byte. created_at is
-- epoch seconds, accepted_ms epoch milliseconds; NULL stands for the zero
-- time. has_media is 1 when the message carries a media id to fetch
-- (Kind.HasMedia() and MediaID set), decided when it is archived.
CREATE TABLE messages (
    id          TEXT    NOT NULL PRIMARY KEY,
    account     TEXT    NOT NULL,
    client      TEXT    NOT NULL,
    conv        TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    direction   TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    wx_msg_id   TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    event_key   TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    media_id    TEXT    NOT NULL,
    attrs       TEXT    NOT NULL,
    raw         BLOB    NOT NULL,
    created_at  INTEGER,
    accepted_ms INTEGER,
    employee    TEXT    NOT NULL,
    has_media   INTEGER NOT NULL
) STRICT;

-- Since and MaxSeq.
CREATE INDEX messages_conv_seq ON messages (conv, seq);

-- MissingMedia: only the messages that carry media, by acceptance.
CREATE INDEX messages_media_accepted ON messages (accepted_ms) WHERE has_media = 1;

-- Outcomes of outbound deliveries (sent, failed with WeChat's errcode).
CREATE TABLE events (
    id         TEXT    NOT NULL PRIMARY KEY,
    message_id TEXT    NOT NULL,
    account    TEXT    NOT NULL,
    conv       TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    errcode    INTEGER NOT NULL,
    errmsg     TEXT    NOT NULL,
    at_ms      INTEGER NOT NULL
) STRICT;

CREATE INDEX events_message ON events (message_id);

-- Media content, addressed by the hex SHA-256 of data: the same bytes are
-- stored once, whichever messages carried them.
CREATE TABLE media (
    sha256       TEXT    NOT NULL PRIMARY KEY,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    data         BLOB    NOT NULL,
    fetched_ms   INTEGER NOT NULL
) STRICT;

-- Which message carried which media. A media message without a row here
-- still waits for its media (see MissingMedia).
CREATE TABLE media_links (
    message_id TEXT    NOT NULL,
    sha256     TEXT    NOT NULL,
    media_id   TEXT    NOT NULL,
    file_name  TEXT    NOT NULL,
    linked_ms  INTEGER NOT NULL,
    PRIMARY KEY (message_id, sha256)
) STRICT;

-- Append-only, enforced by the database itself: the relay's code never
-- updates or deletes, and these make sure no later code does by mistake.
-- (They do not stop someone with the file and the sqlite3 shell; tamper
-- evidence is the hash chain's job, not this.)
CREATE TRIGGER messages_no_update BEFORE UPDATE ON messages
BEGIN SELECT RAISE(ABORT, 'archive is append-only: messages cannot be updated'); END;
CREATE TRIGGER messages_no_delete BEFORE DELETE ON messages
BEGIN SELECT RAISE(ABORT, 'archive is append-only: messages cannot be deleted'); END;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'archive is append-only: events cannot be updated'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'archive is append-only: events cannot be deleted'); END;
CREATE TRIGGER media_no_update BEFORE UPDATE ON media
BEGIN SELECT RAISE(ABORT, 'archive is append-only: media cannot be updated'); END;
CREATE TRIGGER media_no_delete BEFORE DELETE ON media
BEGIN SELECT RAISE(ABORT, 'archive is append-only: media cannot be deleted'); END;
CREATE TRIGGER media_links_no_update BEFORE UPDATE ON media_links
BEGIN SELECT RAISE(ABORT, 'archive is append-only: media links cannot be updated'); END;
CREATE TRIGGER media_links_no_delete BEFORE DELETE ON media_links
BEGIN SELECT RAISE(ABORT, 'archive is append-only: media links cannot be deleted'); END;
