// Package embedded is the archive wechat-relay uses when nothing is
// installed: every message and event, the outcomes of outbound
// deliveries and the media clients sent, in one SQLite file, through the
// pure-Go driver modernc.org/sqlite (no cgo, nothing to install). It
// implements relay.Archive, relay.MediaStore, relay.EventLog and
// relay.Interactions, like the ClickHouse archive in storage/archive, and
// passes the same conformance suite (storage/archivetest): one contract,
// two backends.
//
// # What it is for
//
// A first run, demos, the simulator, single-node trials. Not production:
// it is one process writing to one disk, with no replication, no
// partitions to drop for retention, and SQLite's single writer. Several
// relay instances cannot share it (several processes on one machine can
// open the file, and SQLite's locks keep them correct, but they take
// turns to write). Production uses ClickHouse.
//
// # What it owns
//
//   - The schema, as versioned SQL files embedded in the binary
//     (migrations/NNNN_*.sql), applied in order by Open, each in one
//     transaction together with its row in schema_migrations.
//   - The tables messages, events, media (content-addressed by SHA-256),
//     media_links and seals (since 0003), and audit, lexicon_hits,
//     alert_reviews and holds (since 0004, compliance.go), directory
//     (since 0005, directory.go), client_profiles and client_tags (since
//     0010, profiles.go), with the same
//     meaning as in the ClickHouse schema; messages and events carry hash and batch_id
//     (relay/seal.go), indexed for healing and verification.
//     messages.interaction (since 0002) records
//     relay.Message.IsInteraction when a message is archived; it is NULL
//     for older rows, for which the virtual column legacy_interaction
//     derives it (nothing is backfilled: the archive is append-only).
//
// # Invariants
//
//   - Append-only. Nothing here updates or deletes a row, and triggers in
//     the schema make the database refuse UPDATE and DELETE on every
//     archive table, so later code cannot do it by mistake either.
//   - Idempotent by message id. The id is the primary key, and Insert
//     adds a message only if its id is not archived yet (ON CONFLICT (id)
//     DO NOTHING, which targets the id alone: any other constraint
//     failure is an error, never a message silently dropped). A replay
//     keeps the first archived copy; ClickHouse keeps the latest accepted
//     one. They are the same bytes in practice: a replay carries the
//     spooled copy. Delivery events are idempotent by event id the same
//     way.
//   - Durable when acknowledged. Each Insert and PutMedia is one
//     transaction; the file is in WAL mode with synchronous=FULL, so a
//     commit is fsynced before the call returns.
//   - Exactness of the content: Raw and media data are BLOBs, byte for
//     byte; Attrs is a JSON object; CreatedAt is kept to the second and
//     AcceptedAt to the millisecond, as in ClickHouse, and read back in
//     UTC. A zero time is stored as NULL and read back zero.
//   - Sequence numbers are SQLite INTEGERs: up to 2^63-1. Insert refuses
//     a larger one rather than store it wrapped.
//
// # Concurrency
//
// An Archive is safe for concurrent use and starts no goroutines. Writes
// take turns inside the process (waiting for a turn ends with the
// caller's context) and begin IMMEDIATE, so they never fail half-way on a
// lock; another process holding the lock is waited for up to a busy
// timeout. Reads run on their own connections alongside writes (WAL).
// An in-memory archive (MemoryPath) uses one connection for everything,
// since each connection to ":memory:" is a database of its own.
package embedded
