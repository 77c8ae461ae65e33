// Package archive is the ClickHouse archive of wechat-relay: every message
// and event, both ways, the outcomes of outbound deliveries, and the media
// clients sent. It implements relay.Archive, relay.MediaStore,
// relay.EventLog (delivery events of outbound messages) and
// relay.Interactions (WeChat's 48-hour window and per-interaction quota,
// computed from the archive) through github.com/ClickHouse/clickhouse-go/v2
// over the native protocol.
//
// # What it owns
//
//   - The schema, as versioned SQL files embedded in the binary
//     (migrations/NNNN_*.sql), applied in order by Open and recorded in
//     schema_migrations. Re-running is a no-op; every statement is
//     idempotent, because ClickHouse has no transactional DDL and two
//     instances may start at once: CREATE says IF NOT EXISTS, and ADD
//     COLUMN, which cannot say it on 18.16, is guarded by the runner
//     (skipped when system.columns lists the column; an error forgiven
//     when the column is there afterwards).
//   - The tables messages, events, media (content-addressed by SHA-256),
//     media_links and seals (since 0003: tamper evidence, relay/seal.go;
//     messages and events carry hash and batch_id). It implements
//     verify.Source too: physical rows, copies included, for
//     `wechat-relay verify`. Config.ReadOnly opens an existing database
//     without DDL, for readers that have SELECT only; Config.NoMigrate
//     does the same for the relay itself (storage.clickhouse.migrate:
//     false), which then needs INSERT and SELECT only.
//   - The directory table (since 0005, directory.go): every version of
//     every employee, team and account entry admins changed
//     (relay.DirectoryStore), never updated; readers take the newest.
//   - The client_profiles and client_tags tables (since 0010,
//     profiles.go): every version of every client's profile and of every
//     account's tag vocabulary (relay.ProfileStore), signed and chained.
//   - The compliance tables (since 0004, compliance.go): audit (the
//     audit log, chained per writer: relay.AuditStore), lexicon_hits and
//     alert_reviews (relay.AlertStore), holds (relay.RetentionStore, which
//     also counts messages per account and month for the retention
//     report). Plain MergeTree, not Replacing: a retried insert leaves
//     identical copies that readers collapse, and a forged second record
//     in one place stays for verify to find instead of merging away. messages.interaction (since 0002) records
//     relay.Message.IsInteraction when a message is archived; rows older
//     than the column derive it on read from its DEFAULT expression.
//
// # Invariants
//
//   - Append-only. The relay never updates or deletes a row: no ALTER ...
//     UPDATE/DELETE, no OPTIMIZE ... DEDUPLICATE issued from here.
//   - Idempotent by message id. The pipeline inserts again after a crash
//     whatever it is not sure was committed, so an id may be written more
//     than once. The tables are ReplacingMergeTree keyed by the id (version
//     accepted_ms), so copies collapse when parts merge, and every read
//     here collapses them before that (LIMIT 1 BY id, GROUP BY id): callers
//     always see one logical row per id. Raw counts (count() without
//     collapsing) may show copies until a merge; count distinct ids. Copies
//     in different monthly partitions (a replay across a month boundary)
//     are never merged, which is why reads collapse instead of relying on
//     FINAL. Delivery events are idempotent by event id the same way
//     (ReplacingMergeTree(at_ms)).
//   - Reads stay near what they are about. The sort key is (account, conv,
//     id) and partitions are months of day, so Existing asks by account,
//     conversation and a day either side of the messages' AcceptedAt, not
//     by id alone; Unsettled, MissingMedia and LastInteraction read the
//     days from their starting time on (events and links from a day
//     earlier, for clock skew between instances). LatestEvents, asked by
//     message id only, reads the message_id column of all of events.
//   - An Insert is one INSERT of one block. Its acknowledgement means the
//     server's page cache, not fsync; durability until then is the relay
//     spool's job. An error means "unknown" (some monthly parts may be in,
//     or the acknowledgement was lost), and the answer is to insert the
//     same batch again, which idempotency makes safe.
//   - Exactness of the content: Raw is stored byte for byte (String is a
//     byte string: control bytes and invalid UTF-8 survive), Attrs as a
//     JSON object, CreatedAt to the second (DateTime), AcceptedAt to the
//     millisecond (accepted_ms).
//
// # Why the schema looks old-fashioned
//
// The same schema must run on Debian's ClickHouse 18.16 (what the tests
// use) and on current 24.x/25.x (production). 18.16 has no DateTime64
// (nor now64), no TTL, column codecs, ILIKE, data-skipping indexes,
// async_insert, insert_deduplication_token or dedup window for
// non-replicated tables, and LowCardinality only behind an experimental
// setting. So: times are DateTime plus UInt64 epoch milliseconds;
// enumerations are plain String; retention is dropping monthly partitions
// (PARTITION BY toYYYYMM(day)), not TTL; idempotency is ours. Other things
// learned against 18.16 with clickhouse-go v2.51:
//
//   - A batch INSERT needs an explicit column list; an Exec of
//     INSERT ... VALUES (?, ...) with bound values hangs. Every write here
//     is a batch with the columns named, Send checked, and Abort on any
//     path that does not send.
//   - A []string bound to `IN ?` becomes an array literal, which 18.16
//     rejects for IN; ids, accounts and conversations go in as a tuple
//     (clickhouse.GroupSet).
//   - ALTER TABLE ... ADD COLUMN IF NOT EXISTS is a syntax error (it came
//     later), and adding a column that exists fails (code 44). A column
//     added with a DEFAULT expression over other columns is computed from
//     them, on read, for parts written before it existed; merged parts
//     keep the computed value. No mutation is needed to fill it.
//   - A time.Time bound against a Date column compares wrongly (no row
//     matches: see below); dates go in as 'YYYY-MM-DD' strings through
//     toDate.
//   - Date compared with a DateTime is compared as raw numbers (days
//     against seconds), so `day >= toDateTime(...)` is false for any
//     real date. And dates before 1970 become 0000-00-00: times are
//     clamped into DateTime's range (1970 to 2106) before they are sent.
//   - clickhouse-go v2.51 logs "unsupported clickhouse version" at WARN
//     for every new connection to a server older than 25.8; that is the
//     driver's support policy, not a failure.
//   - "Too many parts" throttles at 150 active parts per partition and
//     fails at 300: callers should group-commit (one Insert per batch of
//     messages), not insert one row at a time under load.
//
// # Concurrency and failure
//
// An Archive is safe for concurrent use and starts no goroutines of its
// own; the driver keeps a pool of connections. No call waits unbounded:
// a ClickHouse that is down (connection refused) fails the call at once;
// one that cannot be reached fails it within Config.DialTimeout or the
// context's deadline; one that accepts connections but does not answer
// (hung, overloaded) fails it within DialTimeout on a new connection (the
// driver's handshake does not consult the context) and within ReadTimeout
// or the context's deadline on a pooled one. Once the server is back, the
// next call gets a fresh connection: broken ones are closed, not reused.
package archive
