// Package journal hands every archived message to the firm's own archive
// (Smarsh, Global Relay, Proofpoint, Mimecast, Veritas...) the way those
// ingest every other channel: as an RFC 5322 email sent over SMTP to a
// journal address.
//
// Each archived message becomes one email (render.go): From and To are
// stable addresses of the client and the employee, the account, the
// conversation, the archive row id and its hash are headers, the text
// and the media are parts. Optionally, each conversation's UTC day is
// also sent as one transcript email (transcript.go). The Message-ID is
// derived from the row id (address.go), so a message sent twice — the
// journal delivers at least once — is dropped by the receiver as a
// duplicate.
//
// The Worker (worker.go) sends in archive order over one STARTTLS,
// authenticated SMTP connection per round (smtp.go), and records what
// the server accepted in the archive's ledger (relay.JournalStore). What
// is archived and has no ledger entry is what it sends next: a restart,
// an outage of the SMTP server or of the archive loses nothing, and
// nothing but the ledger remembers where it was. It reads the archive
// only: a journal that fails never blocks archiving or delivery. Among
// several relay instances one journals at a time, taking turns through a
// lease (relay.Dedupe); should two overlap (Redis down, a round longer
// than its lease), the receiver drops the copies by Message-ID.
package journal
