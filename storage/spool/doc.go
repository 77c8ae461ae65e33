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
//     relay.ErrDuplicate once that record is durable), a cancelled Done
//     has removed the messages from Pending.
//   - A failed write or fsync fails the spool for good: every later call
//     returns the error, and the process must reopen the spool. Records
//     of the failed batch may or may not be found on replay.
//   - Pending and Len show only messages whose Accept is durable.
//   - Options.NoSync drops the fsyncs and with them this contract.
//
// # Recovery
//
// Open replays all segments in order. A record that is cut short or
// fails its checksum is a torn tail only if it is in the last segment
// and no valid record follows it: no frame at any later offset, byte by
// byte, has a length within 1 .. 16 MiB that fits in the file, a
// matching CRC-32C and a payload that decodes. That is what a crash
// during a write leaves: the record was never acknowledged, so Open
// truncates it away, logs a warning with the offset, and carries on
// (TestTornTail, TestTornTailOfLargeSegment). Only frames that fit the
// bytes left are checksummed, so the scan stays quick at the end of a
// full segment.
//
// Any other damage is corruption, and Open refuses to start with an
// error wrapping ErrCorrupt that names the file, the offset of the bad
// record and that of the next valid one, and leaves every file as it is:
// a bad record followed by a valid one in the last segment (acknowledged
// records follow it; TestCorruptRecordRefusesOpen,
// TestCorruptionInLastSegment), any bad record in another segment, and a
// record whose checksum holds but which does not decode
// (TestCorruptionIsAnError). A segment whose header is not the spool's
// is an error of its own ("not a spool segment"). The rule errs on the
// safe side: should a crash persist a later page of an unacknowledged
// batch but not an earlier one, Open refuses too, and salvage keeps
// those records.
//
// Salvage, run as `wechat-relay spool-salvage -dir DIR` with the relay
// stopped, recovers such a spool: under the directory lock it keeps the
// valid records of each damaged segment, byte for byte, and drops each
// run of damaged bytes up to the next valid record (the same rule). It
// writes them to a new file and fsyncs it, keeps the original as
// <segment>.damaged (a hard link, so the segment's own name never goes
// missing; never deleted), renames the new file into place and fsyncs
// the directory; Open then hands out exactly the messages whose
// records were intact (TestSalvage, TestSalvageDamage). What the dropped
// bytes held is lost: an Accept loses its message, an Assign its
// sequence numbers, and a Done brings its messages back as pending. On a
// clean spool Salvage changes nothing (TestSalvageCleanSpool).
//
// After replay Open always starts a new segment, so a file a crash left
// behind is never appended to.
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
//   - A message ID is pending at most once; Append of a pending ID writes
//     nothing and returns relay.ErrDuplicate only once the first copy is
//     durable: it waits for a write in flight, and returns that write's
//     error if it fails (or ctx.Err()), so a retry is never told
//     "accepted" on the strength of a write that may yet fail
//     (TestDuplicateOfFailedAppend, TestContextCancel).
//   - Records only refer backwards: an Assign or Done follows the Accept
//     of the message it names.
//   - Everything pending lives in memory as well as on disk; the spool is
//     sized for hours of outage, not for unbounded backlog.
//   - One directory belongs to one spool: Open takes an exclusive flock on
//     Dir/LOCK (on Unix systems) and returns ErrLocked if it is held.
package spool
