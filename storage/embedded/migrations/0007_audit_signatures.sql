-- 0007: signed audit records (relay/audit.go, relay/seal_sign.go), as in
-- the ClickHouse archive's 0007.
--
-- Each writer signs the hash of every audit record it appends with its
-- seal key (pipeline.seal_key_file), kept outside the archive: key_id names
-- the key (hex of the first 8 bytes of the SHA-256 of the raw public key),
-- signature is the base64 Ed25519 signature of
-- "wechat-relay/audit-signature/v1" || 0x00 || hash.
-- `wechat-relay verify -public-key FILE` checks them. Neither is part of
-- the record's hash: records stored before this migration (or by a relay
-- with no key) read back with both empty, and verify as unsigned records.
-- Adding a column is no UPDATE: the append-only triggers of 0004 do not
-- object.
--
-- Runs in one transaction with its record in schema_migrations.
ALTER TABLE audit ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN signature TEXT NOT NULL DEFAULT '';
