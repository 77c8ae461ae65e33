-- 0001: the archive's first tables.
--
-- Every statement here must be safe to run again (IF NOT EXISTS): ClickHouse
-- has no transactional DDL, so a migration interrupted half-way, or run by two
-- relay instances at once, is simply applied again from the top.
--
-- Written for ClickHouse 18.16 and current releases alike: plain String,
-- UInt*, Int32, Date and DateTime columns; no DateTime64, LowCardinality,
-- Nullable, codecs, TTL or skip indexes. The `ENGINE = … PARTITION BY …
-- ORDER BY …` form is understood since 1.1.54310.
--
-- All tables are ReplacingMergeTree keyed by the archive's own ids, so a row
-- written twice (a replay after a crash) collapses into one when parts merge;
-- until then the readers collapse it themselves (FINAL, GROUP BY or LIMIT BY).

-- One row per archived message or event, either direction. accepted_ms is
-- the version: of two copies of an id the later-accepted one survives merges
-- (they are byte-identical in practice: a replay carries the spooled copy).
-- attrs is the JSON object of relay.Message.Attrs; raw the callback body,
-- byte for byte. day = toDate(accepted_at) in UTC, computed by the writer.
CREATE TABLE IF NOT EXISTS messages (
    id          String,
    account     String,
    client      String,
    conv        String,
    seq         UInt64,
    direction   String,
    kind        String,
    wx_msg_id   String,
    event       String,
    event_key   String,
    text        String,
    media_id    String,
    attrs       String,
    raw         String,
    created_at  DateTime,
    accepted_at DateTime,
    accepted_ms UInt64,
    employee    String,
    day         Date
) ENGINE = ReplacingMergeTree(accepted_ms)
PARTITION BY toYYYYMM(day)
ORDER BY (account, conv, id);

-- Outcomes of outbound deliveries (sent, failed with WeChat's errcode).
CREATE TABLE IF NOT EXISTS events (
    id         String,
    message_id String,
    account    String,
    conv       String,
    type       String,
    errcode    Int32,
    errmsg     String,
    at         DateTime,
    at_ms      UInt64,
    day        Date
) ENGINE = ReplacingMergeTree(at_ms)
PARTITION BY toYYYYMM(day)
ORDER BY (account, conv, id);

-- Media content, addressed by the hex SHA-256 of data: the same bytes sent
-- twice are stored once. Not partitioned, so that merges collapse every copy
-- of a hash whenever it was fetched (ReplacingMergeTree only merges within a
-- partition).
CREATE TABLE IF NOT EXISTS media (
    sha256       String,
    content_type String,
    size         UInt64,
    data         String,
    fetched_at   DateTime,
    day          Date
) ENGINE = ReplacingMergeTree()
ORDER BY sha256;

-- Which message carried which media. A message without a row here still
-- waits for its media (see MissingMedia).
CREATE TABLE IF NOT EXISTS media_links (
    message_id String,
    sha256     String,
    media_id   String,
    file_name  String,
    linked_at  DateTime,
    day        Date
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY message_id;
