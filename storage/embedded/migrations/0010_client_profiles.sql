-- 0010: client profiles and the accounts' tag vocabularies, as in the
-- ClickHouse archive's 0010 (relay/profile.go, relay/profile_sign.go,
-- relay.ProfileStore).
--
-- Append-only: every change is a new row (a new signed version of the
-- client's profile, or of the account's vocabulary), and triggers refuse
-- every UPDATE and DELETE. The primary key is the whole record, so an
-- identical copy is ignored (ON CONFLICT DO NOTHING) while two different
-- records of one version both stay. tags is a JSON array of strings.
-- Times are epoch milliseconds.
--
-- Runs in one transaction with its record in schema_migrations.
CREATE TABLE client_profiles (
    account   TEXT    NOT NULL,
    openid    TEXT    NOT NULL,
    conv      TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    at_ms     INTEGER NOT NULL,
    "by"      TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    remark    TEXT    NOT NULL,
    tags      TEXT    NOT NULL,
    note      TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL,
    key_id    TEXT    NOT NULL,
    signature TEXT    NOT NULL,
    PRIMARY KEY (account, openid, version, at_ms, "by", name, remark, tags, note, prev_hash, hash, key_id, signature)
) STRICT;
CREATE INDEX client_profiles_conv ON client_profiles (conv);

CREATE TABLE client_tags (
    account   TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    at_ms     INTEGER NOT NULL,
    "by"      TEXT    NOT NULL,
    tags      TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL,
    key_id    TEXT    NOT NULL,
    signature TEXT    NOT NULL,
    PRIMARY KEY (account, version, at_ms, "by", tags, prev_hash, hash, key_id, signature)
) STRICT;

CREATE TRIGGER client_profiles_no_update BEFORE UPDATE ON client_profiles
BEGIN SELECT RAISE(ABORT, 'archive is append-only: client profiles cannot be updated'); END;
CREATE TRIGGER client_profiles_no_delete BEFORE DELETE ON client_profiles
BEGIN SELECT RAISE(ABORT, 'archive is append-only: client profiles cannot be deleted'); END;
CREATE TRIGGER client_tags_no_update BEFORE UPDATE ON client_tags
BEGIN SELECT RAISE(ABORT, 'archive is append-only: tag vocabularies cannot be updated'); END;
CREATE TRIGGER client_tags_no_delete BEFORE DELETE ON client_tags
BEGIN SELECT RAISE(ABORT, 'archive is append-only: tag vocabularies cannot be deleted'); END;
