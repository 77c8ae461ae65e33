-- 0006: signed seals (relay/seal_sign.go).
--
-- Each writer signs the hash of every seal it stores with an Ed25519 key
-- kept outside the archive: key_id names the key (hex of the first 8 bytes
-- of the SHA-256 of the raw public key), signature is the base64 Ed25519
-- signature of "wechat-relay/seal-signature/v1" || 0x00 || hash.
-- `wechat-relay verify -public-key FILE` checks them. Neither is part of
-- the seal's hash: seals stored before this migration (or by a relay with
-- no key) read back with both empty, and verify as unsigned seals.
--
-- One column per statement, as the migration runner (migrate.go) guards
-- each `ALTER TABLE t ADD COLUMN c` (18.16 has no IF NOT EXISTS there).
-- Adding a column with a constant default rewrites no part of the
-- ReplacingMergeTree: old parts read the default.
ALTER TABLE seals ADD COLUMN key_id String DEFAULT '';
ALTER TABLE seals ADD COLUMN signature String DEFAULT '';
