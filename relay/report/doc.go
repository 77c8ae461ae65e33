// Package report is the desk's analytics: how many messages came and went,
// how fast clients were answered, what reached them, computed by the
// archive and shown by the console's Reports view, its API
// (GET /api/reports/{name}) and the `wechat-relay report` command.
//
// The archive computes every figure (Store, implemented by both archives
// in storage and pinned down by storage/archivetest's RunReports); this
// package decides what a viewer may see (Service.Run narrows a team
// supervisor to their teams and refuses agents), puts the figures into
// tables, and writes them as JSON or CSV. Auditing the view is the
// caller's job, as for search.
//
// The definitions, the same in both archives:
//
//   - A message in is an inbound message that is not an event; a message
//     out is an outbound message. Internal messages (notes, transfers,
//     resolve, reopen) are neither. Each archived id counts once,
//     whatever copies a replay left.
//   - Days and hours are those of the viewer's time zone, given as a
//     fixed offset from UTC (Filter.Offset); a message belongs to the
//     day and hour of its AcceptedAt there.
//   - A client (conversation) is active on a day when it interacted with
//     the account that day (relay.Message.IsInteraction); new that day
//     when its first interaction ever was that day, returning otherwise.
//   - A conversation is opened on the day of its first message ever;
//     resolved by each resolve action; reopened by each reopen action and
//     by each interaction of the client that follows a resolve (the
//     conversation is open again, relay.StatusOpen).
//   - A wait starts at the first message in after the conversation's
//     previous message out (or its start), and a reply is the message out
//     that ends it; the response time is the reply's AcceptedAt less the
//     wait's start (0 if the clocks put it before). The first response is
//     the reply to a conversation's first wait. Replies count in the
//     range they were sent in, for the employee who sent them. Median
//     and p90 are nearest-rank: the ceil(n*p/100)-th smallest.
//   - A conversation waits for a reply now when its latest message in or
//     out (or resolve) is a message in; it waits since the first message
//     in after its latest message out or resolve.
//   - A client's 48-hour window closes 48 hours after their latest
//     interaction; "closing" lists those it closes for within the next
//     hours, with no message out since that interaction.
//   - Delivery counts outbound messages accepted in the range by the
//     state of their latest delivery event (the order relay.EventLog
//     uses); none yet is pending.
//   - The compliance report's review queue and legal holds are of now,
//     and come from the services that check signatures
//     (Service.Reviews, a relay.ReviewLog; Service.Holds, relay.LegalHolds),
//     not from the archive's counts: a review or a release forged in the
//     archive changes neither (verified.go).
package report
