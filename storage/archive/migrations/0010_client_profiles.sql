-- 0010: client profiles and the accounts' tag vocabularies
-- (relay/profile.go, relay/profile_sign.go, relay.ProfileStore).
--
-- A profile is what employees know of a client the Official Account does
-- not tell them: a display name, a remark, tags, a note. Append-only like
-- the rest: every change is a new row, the whole profile after the
-- change (a new version of the client's chain), never an update, so the
-- archive keeps who wrote what of whom, and when. Each version carries
-- hash (hex SHA-256 of its canonical encoding "wechat-relay/profile/v1"),
-- prev_hash (the hash of the version it follows), and key_id and
-- signature (Ed25519 of "wechat-relay/profile-signature/v1" || 0x00 ||
-- hash by the writer's seal key). client_tags keeps each account's tag
-- vocabulary the same way ("wechat-relay/tags/v1"), the whole list per
-- version.
--
-- Plain MergeTree, not Replacing: a retried insert leaves identical
-- copies, which the readers collapse (DISTINCT); two different versions
-- in one place both stay, for verify to see. No partitions: profiles are
-- few and kept whole, so retention has nothing to drop here. Times are
-- epoch milliseconds (UTC).
CREATE TABLE IF NOT EXISTS client_profiles (
    account   String,
    openid    String,
    conv      String,
    version   UInt64,
    at_ms     UInt64,
    by        String,
    name      String,
    remark    String,
    tags      Array(String),
    note      String,
    prev_hash String,
    hash      String,
    key_id    String,
    signature String
) ENGINE = MergeTree()
ORDER BY (account, openid, version);

CREATE TABLE IF NOT EXISTS client_tags (
    account   String,
    version   UInt64,
    at_ms     UInt64,
    by        String,
    tags      Array(String),
    prev_hash String,
    hash      String,
    key_id    String,
    signature String
) ENGINE = MergeTree()
ORDER BY (account, version);
