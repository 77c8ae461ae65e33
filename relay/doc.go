// Package relay is the domain of wechat-relay: messages, conversations,
// routing and the archive-before-delivery pipeline.
//
// It knows no transport and no database. The edges plug into the small
// interfaces declared here (Spool, Archive, Bus, Dedupe, Sequencer,
// Assignments, Sender, EventLog, …): gateway turns WeChat callbacks into
// Messages and hands them to a Pipeline, and sends through Sender; storage
// implements the stores; console consumes the Bus and calls the Outbox.
//
// Goroutine model: Pipeline.Run is the single archive writer of a
// process; Outbox.Run owns the sending workers (one per share of the
// conversations, so one conversation's messages leave in order) and the
// recovery scan; MediaWorker.Run fetches media; Bot.Run and the
// LexiconWatcher react to the bus. Each stops when its context ends.
//
// Guarantees owned by this package:
//   - A message is durable in the Spool before Accept returns, so WeChat is
//     answered only for messages that cannot be lost.
//   - Nothing is published on the Bus before the Archive has committed the
//     batch that holds it.
//   - Within a conversation, sequence numbers are dense and assigned in
//     acceptance order; delivery follows the same order.
//   - Every accepted message is archived once: retries are dropped by
//     Dedupe, and the archive's own key keeps it exact when Dedupe forgets.
//   - Outbound (outbox.go, outbox_delivery.go): WeChat's window and quota
//     are checked before anything is archived; a message is archived, then
//     a "sending" event, and only then is WeChat called — at most once: an
//     attempt whose outcome is unknown is recorded as such, never repeated.
//     The bot's messages (bot.go) are ordinary outbound messages.
//   - Compliance (audit.go, lexicon.go, retention.go): the audit log,
//     chained per writer and checked by VerifyAudit; lexicon rules matched
//     on archived messages (LexiconWatcher: hits archived, then alerted)
//     and on sends (a blocking rule refuses before anything is archived);
//     legal holds and the retention report. Nothing here deletes.
//   - Tamper evidence (seal.go, sealer.go): every archived row carries
//     the hash of its content and the id of the seal of its batch; a
//     batch is delivered only once its seal is stored; each writer's
//     seals form a chain per stream; a batch a crash left unsealed is
//     sealed from the archive when the writer starts again. The package
//     relay/verify recomputes all of it. See docs/tamper-evidence.md.
//   - The directory (directory.go, directory_changes.go, roles.go): who
//     works here, in which role and team, serving which accounts. It
//     starts from the configuration; admins' changes are checked, audited,
//     then archived as new versions, never updates, and every instance
//     reloads it (Directory.Run). Routing, team supervisors' scope and
//     team lexicon rules read the current snapshot.
package relay
