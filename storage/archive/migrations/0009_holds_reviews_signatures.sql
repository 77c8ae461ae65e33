-- 0009: signed, chained legal holds and alert reviews
-- (relay/record_seal.go, relay/hold_sign.go, relay/review_sign.go).
--
-- A hold is now a chain of versions per hold id: version 1 places it, a
-- later version with released = 1 releases it. A review is one version
-- of the chain of decisions on its hit. Each version carries hash, the
-- hex SHA-256 of its canonical encoding ("wechat-relay/hold/v1",
-- "wechat-relay/review/v1"), prev_hash, the hash of the version it
-- follows, and key_id and signature, the Ed25519 signature of
-- "wechat-relay/<hold|review>-signature/v1" || 0x00 || hash by the
-- writer's seal key. The relay lifts a hold only for a release that
-- verifies, and counts only the reviews that verify. Rows stored before
-- this migration read back with version 0 and the rest empty.
--
-- One column per statement (migrate.go guards each ADD COLUMN; 18.16
-- has no IF NOT EXISTS there). A constant default rewrites no part.
ALTER TABLE holds ADD COLUMN version UInt64 DEFAULT 0;
ALTER TABLE holds ADD COLUMN released UInt8 DEFAULT 0;
ALTER TABLE holds ADD COLUMN prev_hash String DEFAULT '';
ALTER TABLE holds ADD COLUMN hash String DEFAULT '';
ALTER TABLE holds ADD COLUMN key_id String DEFAULT '';
ALTER TABLE holds ADD COLUMN signature String DEFAULT '';
ALTER TABLE alert_reviews ADD COLUMN version UInt64 DEFAULT 0;
ALTER TABLE alert_reviews ADD COLUMN prev_hash String DEFAULT '';
ALTER TABLE alert_reviews ADD COLUMN hash String DEFAULT '';
ALTER TABLE alert_reviews ADD COLUMN key_id String DEFAULT '';
ALTER TABLE alert_reviews ADD COLUMN signature String DEFAULT '';
