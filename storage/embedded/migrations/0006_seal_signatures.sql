-- 0006: signed seals (relay/seal_sign.go), as in the ClickHouse archive's
-- 0006.
--
-- Each writer signs the hash of every seal it stores with an Ed25519 key
-- kept outside the archive: key_id names the key (hex of the first 8 bytes
-- of the SHA-256 of the raw public key), signature is the base64 Ed25519
-- signature of "wechat-relay/seal-signature/v1" || 0x00 || hash.
-- `wechat-relay verify -public-key FILE` checks them. Neither is part of
-- the seal's hash: seals stored before this migration (or by a relay with
-- no key) read back with both empty, and verify as unsigned seals. Adding
-- a column is no UPDATE: the append-only triggers of 0003 do not object.
--
-- Runs in one transaction with its record in schema_migrations.
ALTER TABLE seals ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE seals ADD COLUMN signature TEXT NOT NULL DEFAULT '';
