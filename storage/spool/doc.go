// Package spool is the durable local queue between "accepted" and
// "archived": a write-ahead log on local disk implementing relay.Spool.
//
// WeChat is answered as soon as Append returns, so Append returns only
// after the record is fsynced. If the relay crashes, or ClickHouse is
// down for hours, nothing accepted is lost: Open replays the log and
// hands every pending message out again, in acceptance order, with the
// sequence numbers Assign recorded.
//
// # File format
//
// Dir holds segment files named by a zero-padded counter
// (00000000000000000001.wal, ...) and a LOCK file. A segment is the
// 8-byte header "WRSPOOL\x01" followed by records, each framed as
//
//	uint32 LE  payload length n (1 .. 16 MiB)
//	uint32 LE  CRC-32C (Castagnoli) of the 4 length bytes and the payload
//	n bytes    payload: a type byte, then its fields
//
// Payloads are Accept (type 1: every field of a relay.Message, strings
// and byte slices length-prefixed with uvarints, nil kept apart from
// empty, times as Unix seconds, nanoseconds and zone; Hash and BatchID,
// which are set only once a message is archived, last and only when
// set), Assign (type 2:
// id → sequence pairs) and Done (type 3: ids); integers inside payloads
// are varints.
//
// # Durability contract
//
//   - Append, Assign and Done return nil only after the fsync that covers
//     their record. A new segment's file and directory entry are synced
//     before any record goes into it.
//   - If ctx is done while a call waits, it returns ctx.Err(), but the
//     record has been submitted and normally becomes durable anyway: a
//     cancelled Append leaves the message pending (a retry gets
//     relay.ErrDuplicate), a cancelled Done has removed the messages from
//     Pending.
//   - A failed write or fsync fails the spool for good: every later call
//     returns the error, and the process must reopen the spool. Records
//     of the failed batch may or may not be found on replay.
//   - Pending and Len show only messages whose Accept is durable.
//   - Options.NoSync drops the fsyncs and with them this contract.
//
// # Recovery
//
// Open replays all segments in order. A record that is cut short or
// fails its checksum at the end of the last segment is what a crash
// during a write leaves: it was never acknowledged, so Open truncates it
// away, logs a warning with the offset, and carries on. The same damage
// in any other segment, or a record whose checksum holds but which does
// not decode, is an error from Open: acknowledged records may follow it.
// Open then always starts a new segment, so a file a crash left behind is
// never appended to.
//
// # Compaction
//
// A segment file is deleted when it is not the active one, every message
// it accepted is done, and no older segment it refers to is left. Assign
// and Done records can live in later segments than the Accept they apply
// to; the last rule keeps such a record on disk as long as its Accept is,
// so deleting files never brings a done message back or loses a sequence
// number. On replay, Assign and Done records for unknown messages are
// ignored: their Accept was in a deleted segment. Deletions happen
// oldest first with a directory fsync after each.
//
// # Goroutines and locking
//
// Open starts one writer goroutine; Close stops it after it has written
// everything already submitted, and waits for it. Callers encode their
// record, update the in-memory state and queue the record under one
// mutex, so the log order is the order of state changes; the writer takes
// the whole queue, writes it with one write and one fsync (group
// commit), and then answers every caller in it. Only the writer touches
// the files after Open; the mutex is never held during I/O.
//
// # Invariants
//
//   - A message ID is pending at most once; Append of a pending ID returns
//     relay.ErrDuplicate and writes nothing.
//   - Records only refer backwards: an Assign or Done follows the Accept
//     of the message it names.
//   - Everything pending lives in memory as well as on disk; the spool is
//     sized for hours of outage, not for unbounded backlog.
//   - One directory belongs to one spool: Open takes an exclusive flock on
//     Dir/LOCK (on Unix systems) and returns ErrLocked if it is held.
package spool
