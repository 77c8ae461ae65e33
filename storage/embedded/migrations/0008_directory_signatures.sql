-- 0008: signed, chained directory records (relay/directory_sign.go), as
-- in the ClickHouse archive's 0008.
--
-- hash is the hex SHA-256 of the record's canonical encoding
-- ("wechat-relay/directory/v1", covering prev_hash and every column of
-- 0005), prev_hash the hash of the version it follows ('' for the
-- first), key_id and signature the Ed25519 signature of
-- "wechat-relay/directory-signature/v1" || 0x00 || hash by the writer's
-- seal key. Records stored before this migration read back with all four
-- empty. The primary key stays the columns of 0005: the hash is a
-- function of them, and a second copy that differs only in its signature
-- is ignored like any identical copy. Adding a column is no UPDATE: the
-- append-only triggers of 0005 do not object.
--
-- Runs in one transaction with its record in schema_migrations.
ALTER TABLE directory ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE directory ADD COLUMN hash TEXT NOT NULL DEFAULT '';
ALTER TABLE directory ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE directory ADD COLUMN signature TEXT NOT NULL DEFAULT '';
