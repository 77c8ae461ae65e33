// Package export is the eDiscovery export: the messages a
// relay.SearchQuery selects — a conversation, a client, an employee, a
// search — written out as a folder or a zip that a regulator can read
// without the relay:
//
//	messages.jsonl   one JSON object per message, every field (raw as base64)
//	messages.csv     the same, one row per message (raw as base64, attrs as JSON)
//	events.jsonl     the delivery events of the exported outbound messages
//	events.csv       the same as CSV
//	profiles.jsonl   every archived version of the clients' profiles
//	                 (name, remark, tags, note; who, when; hash, chain
//	                 link, signature), when the Source keeps them
//
// In both CSV files a cell that begins with = + - @, a tab or a carriage
// return (and is not a plain number) starts with an added apostrophe, so
// that a spreadsheet shows a client's text instead of running it as a
// formula; the JSONL files and the transcript hold every text exactly.
//
//	media/<sha256><ext>  every archived media of the messages, byte for byte
//	transcript.html  a readable, chat-like transcript, media inline
//	manifest.json    counts, the sha256 of every other file, the seals
//	                 covering the exported rows, who exported, when, the
//	                 query and the relay's version
//
// Run reads the archive through Source (both archives in storage
// implement it) and writes into a Sink: DirSink for a folder, ZipSink
// for a zip. It only reads; recording the export in the audit log is
// the caller's job.
//
// Messages are ordered by conversation, then sequence. The whole result
// is held in memory while the files are written (media one at a time):
// exports of millions of rows should be split by date range.
package export
