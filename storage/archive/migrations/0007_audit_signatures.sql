-- 0007: signed audit records (relay/audit.go, relay/seal_sign.go).
--
-- Each writer signs the hash of every audit record it appends with its
-- seal key (pipeline.seal_key_file), kept outside the archive: key_id names
-- the key (hex of the first 8 bytes of the SHA-256 of the raw public key),
-- signature is the base64 Ed25519 signature of
-- "wechat-relay/audit-signature/v1" || 0x00 || hash.
-- `wechat-relay verify -public-key FILE` checks them. Neither is part of
-- the record's hash: records stored before this migration (or by a relay
-- with no key) read back with both empty, and verify as unsigned records.
--
-- One column per statement, as the migration runner (migrate.go) guards
-- each `ALTER TABLE t ADD COLUMN c` (18.16 has no IF NOT EXISTS there).
-- Adding a column with a constant default rewrites no part of the
-- MergeTree: old parts read the default.
ALTER TABLE audit ADD COLUMN key_id String DEFAULT '';
ALTER TABLE audit ADD COLUMN signature String DEFAULT '';
