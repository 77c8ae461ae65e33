-- 0008: signed, chained directory records (relay/directory_sign.go).
--
-- Each version of a directory entry carries hash, the hex SHA-256 of
-- its canonical encoding ("wechat-relay/directory/v1", which covers
-- prev_hash and every column of 0005), prev_hash, the hash of the
-- version it follows ('' for the first), and key_id and signature, the
-- Ed25519 signature of "wechat-relay/directory-signature/v1" || 0x00 ||
-- hash by the writer's seal key (pipeline.seal_key_file). The relay
-- leaves out of its directory a record that is unsigned after the
-- cut-over, badly signed, off its chain or without its admin audit
-- record. Records stored before this migration read back with all four
-- empty: legacy records (relay/directory_sign.go says which are still
-- accepted).
--
-- One column per statement, as the migration runner (migrate.go) guards
-- each `ALTER TABLE t ADD COLUMN c` (18.16 has no IF NOT EXISTS there).
-- Adding a column with a constant default rewrites no part of the
-- MergeTree: old parts read the default.
ALTER TABLE directory ADD COLUMN prev_hash String DEFAULT '';
ALTER TABLE directory ADD COLUMN hash String DEFAULT '';
ALTER TABLE directory ADD COLUMN key_id String DEFAULT '';
ALTER TABLE directory ADD COLUMN signature String DEFAULT '';
